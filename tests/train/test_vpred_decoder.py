import dataclasses

import pytest
import torch

from snapfusion_coreml.config import DecoderConfig
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.modeling.factory import build_tiny_pipeline
from snapfusion_coreml.modeling.loading import load_pipeline, save_pipeline
from snapfusion_coreml.modeling.vae_decoder import VAEDecoder
from snapfusion_coreml.train.distill_decoder import DistillDecoderConfig, distill_decoder
from snapfusion_coreml.train.vpred import VPredConfig, train_vpred

pytestmark = [pytest.mark.xdist_group("test_vpred_decoder")]  # its module fixtures are built once, on one worker


@pytest.mark.slow
def test_vpred_loss_falls(eps_model_dir, prompts, tmp_path, training):
    _, result = train_vpred(VPredConfig(str(eps_model_dir), prompts, training(tmp_path / "v", max_steps=6), data_steps=4))
    assert result.eval_after < result.eval_before
    assert load_pipeline(tmp_path / "v").scheduler.prediction_type == "v_prediction"


@pytest.mark.slow
def test_vpred_trains_the_text_encoder_only_when_asked(eps_model_dir, prompts, tmp_path, training):
    original = load_pipeline(eps_model_dir).text_encoder.state_dict()
    for train_text, name in ((False, "frozen"), (True, "tuned")):
        train_vpred(VPredConfig(str(eps_model_dir), prompts, training(tmp_path / name, max_steps=3, learning_rate=1e-2),
                                data_steps=2, train_text_encoder=train_text))
    frozen = load_pipeline(tmp_path / "frozen").text_encoder.state_dict()
    tuned = load_pipeline(tmp_path / "tuned").text_encoder.state_dict()
    assert all(torch.equal(frozen[k], v) for k, v in original.items())
    changed = [k for k, v in original.items() if not torch.equal(tuned[k], v)]
    assert any("self_attn" in k for k in changed)


def test_vpred_refuses_a_v_model(teacher_dir, prompts, tmp_path, training):
    with pytest.raises(UserError, match="expected an epsilon-prediction model"):
        train_vpred(VPredConfig(str(teacher_dir), prompts, training(tmp_path / "v")))


@pytest.fixture(scope="module")
def wide_decoder_teacher(tmp_path_factory):
    """The tiny pipeline with a decoder wide enough to halve (channels stay multiples of 8)."""
    torch.manual_seed(0)
    decoder = VAEDecoder(DecoderConfig(block_out_channels=(16, 32, 32, 32), layers_per_block=1, norm_num_groups=8))
    pipeline = dataclasses.replace(build_tiny_pipeline(prediction_type="v_prediction"), decoder=decoder.eval())
    path = tmp_path_factory.mktemp("wide") / "teacher"
    save_pipeline(pipeline, path)
    return path


@pytest.mark.slow
def test_decoder_distillation_loss_falls(wide_decoder_teacher, prompts, tmp_path, training):
    config = DistillDecoderConfig(str(wide_decoder_teacher), prompts, training(tmp_path / "d", max_steps=6, learning_rate=5e-3),
                                  sample_steps=2)
    _, result = distill_decoder(config)
    assert result.eval_after < result.eval_before
    loaded = load_pipeline(tmp_path / "d")
    assert loaded.decoder.config.width_multiplier == 0.5


def test_decoder_distillation_from_a_latent_folder(wide_decoder_teacher, tmp_path, training, monkeypatch):
    """--prompts LATENT_FOLDER: the latents are decoded as they are; the teacher UNet never samples."""
    import numpy as np

    data = tmp_path / "latents"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        np.save(data / f"{i:06d}.npy", rng.standard_normal((4, 8, 8)).astype(np.float32))
        (data / f"{i:06d}.txt").write_text("a red circle on a blue background")
    config = DistillDecoderConfig(str(wide_decoder_teacher), data, training(tmp_path / "d", max_steps=6, learning_rate=5e-3),
                                  sample_steps=2)
    from snapfusion_coreml.train import common

    calls = []
    original = common.LatentSource.teacher_samples
    monkeypatch.setattr(common.LatentSource, "teacher_samples", lambda self, *a: calls.append(1) or original(self, *a))
    _, result = distill_decoder(config)
    assert calls == [] and result.eval_after < result.eval_before
