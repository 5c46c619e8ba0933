"""`generate OUT --init-image` (the converted packages, interpreter fp16) against `generate MODEL
--init-image` (PyTorch), per step, for samplers of both families; and the CLI end to end."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from cli_runner import run_cli
from snapfusion_coreml.metrics import psnr
from tests.img2img.images import init_image
from tests.samplers.test_generate_vs_diffusers import NEGATIVE, PROMPT, SCHEDULERS, SEED, _folder_with_scheduler, _scheduler

CASES = [c for c in SCHEDULERS if c[0] in ("ddim", "lcm-lora", "dpmsolver++")]

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest on a shared machine



@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
@pytest.mark.slow
def test_generate_out_follows_the_model_per_step(case, converted_with_encoder, diffusers_folder, tmp_path):
    from snapfusion_coreml.contracts.pipeline_json import PipelineManifest
    from snapfusion_coreml.convert import ConvertOptions
    from snapfusion_coreml.convert.pipeline_manifest import choose_sampling
    from snapfusion_coreml.interpreter.backend import load_package_pipeline
    from snapfusion_coreml.modeling.attention import AttentionImpl
    from snapfusion_coreml.modeling.loading import ModelFolder, load_pipeline

    _, class_name, extra, steps, guidance = case
    steps = min(steps, 8)
    folder = _folder_with_scheduler(diffusers_folder[0], tmp_path / "m", _scheduler(class_name, extra))
    out = tmp_path / "out"
    shutil.copytree(converted_with_encoder, out)
    sampling = choose_sampling(ModelFolder(folder), ConvertOptions(out=out, steps=steps, guidance=guidance, unet_batch=2))
    dataclasses.replace(PipelineManifest.read(out), sampler=sampling.record).write(out)
    image = init_image(seed=4)
    runs = []
    for pipeline in (load_pipeline(folder, attention=AttentionImpl.ORIGINAL), load_package_pipeline(out, "fp16")):
        latents: list[torch.Tensor] = []
        picture = pipeline.generate(PROMPT, steps, guidance, SEED, negative_prompt=NEGATIVE, init_image=image, strength=0.6,
                                    on_step=lambda i, t, z, seen=latents: seen.append(z.clone()))
        runs.append((picture, latents))
    (reference, expected), (picture, latents) = runs
    assert len(latents) == len(expected) == int(steps * 0.6)  # the calls from t_start = steps - int(steps * strength)
    for i, (theirs, ours) in enumerate(zip(expected, latents)):
        assert psnr(theirs.numpy(), ours.numpy()) >= 30.0, (i, psnr(theirs.numpy(), ours.numpy()))
    assert psnr(reference, picture) >= 30.0


@pytest.mark.slow
def test_cli_generate_init_image_model_and_out(converted_with_encoder, diffusers_folder, tmp_path, capsys):
    """The CLI reads the PNG, fits it and draws what Pipeline.generate draws from the same image;
    a non-square PNG is center-cropped and resized first."""
    from PIL import Image

    from snapfusion_coreml.image_size import ImageSize
    from snapfusion_coreml.init_image import fit_init_image
    from snapfusion_coreml.modeling.attention import AttentionImpl
    from snapfusion_coreml.modeling.loading import load_pipeline

    start = tmp_path / "start.png"
    init_image(96, 80, seed=6).save(start)
    root = diffusers_folder[0]
    for model, name in ((root, "model.png"), (converted_with_encoder, "out.png")):
        code, stdout, err = run_cli(["generate", str(model), "--prompt", PROMPT, "--init-image", str(start), "--strength", "0.5",
                                     "--steps", "4", "--seed", str(SEED), "-o", str(tmp_path / name), "--json"], capsys)
        assert code == 0, err
        result = json.loads(stdout)
        assert (result["init_image"], result["strength"], result["unet_steps"]) == (str(start), 0.5, 2)
    fitted = fit_init_image(Image.open(start), ImageSize(64, 64))
    expected = load_pipeline(root, attention=AttentionImpl.ORIGINAL).generate(PROMPT, 4, None, SEED, init_image=fitted,
                                                                              strength=0.5)
    model_png, out_png = (np.asarray(Image.open(tmp_path / name).convert("RGB")) for name in ("model.png", "out.png"))
    assert np.array_equal(model_png, expected)
    assert psnr(model_png, out_png) >= 30.0
