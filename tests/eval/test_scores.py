"""CLIP score and Frechet distances with weights built here, saved as other tools save them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snapfusion_coreml.errors import UserError
from snapfusion_coreml.eval.scores import CLIPScore, FeatureDistance, TorchScriptInception, inception_features
from snapfusion_coreml.eval.train_judge import scene_images

PROMPTS = ["a red circle on a blue background", "a green square on a white background",
           "a black triangle on a yellow background", "an orange circle on a purple background"]


@pytest.mark.slow
def test_clip_score_is_the_raw_cosine_clip_itself_computes(clip_dir):
    from transformers import CLIPModel, CLIPProcessor

    images, _ = scene_images(7, len(PROMPTS))
    scores = CLIPScore(clip_dir)(images, PROMPTS, batch=3)
    # CLIP's own forward: logits_per_image = exp(logit_scale) * cosine
    model = CLIPModel.from_pretrained(clip_dir).eval()
    inputs = CLIPProcessor.from_pretrained(clip_dir)(text=PROMPTS, images=list(images), return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = (model(**inputs).logits_per_image.diagonal() / model.logit_scale.exp()).numpy()
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert np.all(np.abs(scores) <= 1.0)


def test_clip_weights_must_exist_locally(tmp_path):
    with pytest.raises(UserError, match="expected local CLIP weights"):
        CLIPScore(tmp_path / "missing.pt")
    with pytest.raises(UserError, match="expected a transformers CLIP folder with config.json"):
        CLIPScore(tmp_path)


def test_frechet_distance_over_a_torchscript_inception(inception_file):
    from scipy import linalg

    network = inception_features(inception_file)
    assert isinstance(network, TorchScriptInception)
    reference, _ = scene_images(11, 40)
    other, _ = scene_images(12, 40)
    distance = FeatureDistance(network)
    distance.set_reference(reference)
    same, different = distance.distance(reference), distance.distance(other)
    assert abs(same) < 1e-3 and different > 10 * max(abs(same), 1e-6)
    # the textbook formula on the same features: |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrt(S1 S2))
    with torch.no_grad():
        f1, f2 = (network(torch.from_numpy(x).permute(0, 3, 1, 2)).double().numpy() for x in (reference, other))
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    textbook = ((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert different == pytest.approx(textbook, rel=1e-3)
    assert distance.distance(reference) == pytest.approx(same, abs=1e-9)  # the reference is kept


def test_inception_weights_that_need_torch_fidelity(tmp_path):
    missing = tmp_path / "none.pth"
    with pytest.raises(UserError, match="expected the FID Inception weights file"):
        inception_features(missing)
    state = tmp_path / "pt_inception.pth"
    torch.save({"conv.weight": torch.zeros(1)}, state)
    assert inception_features(state) == (2048, str(state))
    try:
        import torch_fidelity  # noqa: F401
    except Exception:
        with pytest.raises(UserError, match="expected torch-fidelity"):
            FeatureDistance(inception_features(state))


@pytest.mark.slow
def test_evolve_clip_scorer_uses_the_same_clip_score(clip_dir, tiny_pipeline):
    from snapfusion_coreml.train.scorers import load_scorer

    prompts = PROMPTS[:2]
    scorer = load_scorer("clip", prompts, clip_weights=clip_dir, steps=2)
    images = np.stack([tiny_pipeline.generate(p, 2, 7.5, i) for i, p in enumerate(prompts)])
    assert scorer(tiny_pipeline, frozenset()) == pytest.approx(float(CLIPScore(clip_dir)(images, prompts).mean()))
    with pytest.raises(UserError, match="expected local CLIP weights"):
        load_scorer("clip", prompts)
