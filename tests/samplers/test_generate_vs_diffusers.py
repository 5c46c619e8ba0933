"""`generate MODEL` and `generate OUT` against diffusers' own pipelines, per scheduler class as
diffusers saves it: StableDiffusionPipeline for SD-format folders (CFG, or none at w <= 1) and
LatentConsistencyModelPipeline for a full LCM UNet with a guidance embedding (time_cond_proj_dim).
Same prompt, negative prompt, seed, steps and guidance; the PyTorch image and the latent after
every step must reach 40 dB, the converted folder run by the interpreter in fp16 30 dB.

The tiny decoder maps every latent to a low-contrast image (samplers' images are 49-79 dB apart),
so the latents after each step, which differ by sampler, are what makes these tests discriminate."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from snapfusion_coreml.metrics import psnr
from tests.samplers.cases import SD15

PROMPT, NEGATIVE, SEED = "a red circle on a blue background", "blurry", 5

# (id, scheduler class, config fields, steps, guidance)
SCHEDULERS = [
    ("ddim", "DDIMScheduler", {"steps_offset": 1, "set_alpha_to_one": False, "clip_sample": False}, 20, 7.5),
    ("pndm", "PNDMScheduler", {"steps_offset": 1, "set_alpha_to_one": False, "skip_prk_steps": True}, 10, 7.5),
    ("dpmsolver++", "DPMSolverMultistepScheduler", {"steps_offset": 1}, 12, 7.5),
    ("dpmsolver++-karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, 10, 7.5),
    ("euler", "EulerDiscreteScheduler", {"steps_offset": 1, "timestep_spacing": "leading"}, 10, 7.5),
    ("euler-turbo", "EulerDiscreteScheduler", {"timestep_spacing": "trailing"}, 1, 0.0),
    ("euler_ancestral-turbo", "EulerAncestralDiscreteScheduler", {"timestep_spacing": "trailing"}, 4, 0.0),
    ("lcm-lora", "LCMScheduler", {"steps_offset": 1}, 4, 1.0),
    ("tcd", "TCDScheduler", {}, 4, 1.5),
]


def _scheduler(class_name: str, extra: dict):
    import diffusers

    return getattr(diffusers, class_name)(**SD15, **extra)


def _folder_with_scheduler(base, out, scheduler, pipeline_class: str = "StableDiffusionPipeline"):
    """`base`'s components beside another scheduler config, as diffusers' save_pretrained writes it."""
    for name in ("unet", "vae", "text_encoder", "tokenizer"):
        if (base / name).exists():
            shutil.copytree(base / name, out / name)
    scheduler.save_config(out / "scheduler")
    (out / "model_index.json").write_text(json.dumps({"_class_name": pipeline_class}))
    return out


def _diffusers_image(pipeline_class, root, unet, vae, text, scheduler, steps, guidance, eta=None
                     ) -> tuple[np.ndarray, list[torch.Tensor]]:
    """(uint8 image, the latents after each step) of diffusers' own pipeline."""
    from snapfusion_coreml.tokenizer import load_tokenizer

    kwargs = dict(vae=vae, text_encoder=text, tokenizer=load_tokenizer(root / "tokenizer"), unet=unet,
                  scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe = pipeline_class(**kwargs)
    latents: list[torch.Tensor] = []

    def record(_pipe, _i, _t, kwargs):
        latents.append(kwargs["latents"].clone())
        return kwargs

    call = dict(prompt=PROMPT, num_inference_steps=steps, guidance_scale=guidance, output_type="np",
                generator=torch.Generator("cpu").manual_seed(SEED), callback_on_step_end=record)
    if pipeline_class.__name__ == "StableDiffusionPipeline":
        call["negative_prompt"] = NEGATIVE
    if eta is not None:
        call["eta"] = eta
    with torch.no_grad():
        image = pipe(**call).images[0]
    return (image * 255).round().astype(np.uint8), latents


def _assert_same(expected: tuple[np.ndarray, list[torch.Tensor]], image: np.ndarray, latents: list[torch.Tensor]) -> None:
    expected_image, expected_latents = expected
    assert len(latents) == len(expected_latents)
    for i, (theirs, ours) in enumerate(zip(expected_latents, latents)):
        assert psnr(theirs.numpy(), ours.numpy()) >= 40.0, (i, psnr(theirs.numpy(), ours.numpy()))
    assert psnr(expected_image, image) >= 40.0, psnr(expected_image, image)


@pytest.mark.parametrize("case", SCHEDULERS, ids=[c[0] for c in SCHEDULERS])
@pytest.mark.slow
def test_generate_model_equals_stable_diffusion_pipeline(case, diffusers_folder, tmp_path):
    from diffusers import StableDiffusionPipeline

    from snapfusion_coreml.modeling.attention import AttentionImpl
    from snapfusion_coreml.modeling.loading import load_pipeline

    _, class_name, extra, steps, guidance = case
    root, unet, vae, text = diffusers_folder
    folder = _folder_with_scheduler(root, tmp_path / "m", _scheduler(class_name, extra))
    eta = 0.3 if class_name == "TCDScheduler" else None  # ours defaults to the TCD authors' gamma
    expected = _diffusers_image(StableDiffusionPipeline, root, unet, vae, text, _scheduler(class_name, extra), steps,
                                guidance, eta)
    ours = load_pipeline(folder, attention=AttentionImpl.ORIGINAL)
    assert ours.sampler_settings().scheduler_class == class_name
    latents: list[torch.Tensor] = []
    image = ours.generate(PROMPT, steps, guidance, SEED, negative_prompt=NEGATIVE,
                          on_step=lambda i, t, z: latents.append(z.clone()))
    _assert_same(expected, image, latents)


def test_full_lcm_unet_equals_latent_consistency_pipeline(lcm_unet_folder):
    from diffusers import LatentConsistencyModelPipeline, LCMScheduler

    from snapfusion_coreml.modeling.attention import AttentionImpl
    from snapfusion_coreml.modeling.loading import load_pipeline

    root, unet, vae, text = lcm_unet_folder
    ours = load_pipeline(root, attention=AttentionImpl.ORIGINAL)
    assert (ours.defaults.steps, ours.defaults.guidance_scale) == (4, 8.5)  # the LCM pipeline's defaults
    for steps, guidance in ((4, 8.5), (2, 3.0)):
        expected = _diffusers_image(LatentConsistencyModelPipeline, root, unet, vae, text,
                                    LCMScheduler(**SD15, set_alpha_to_one=True), steps, guidance)
        latents: list[torch.Tensor] = []
        image = ours.generate(PROMPT, steps, guidance, SEED, on_step=lambda i, t, z, seen=latents: seen.append(z.clone()))
        _assert_same(expected, image, latents)


@pytest.fixture(scope="module")
def converted_sd(convert_once, diffusers_folder):
    """The tiny SD folder converted once (fp16); each case below swaps only the sampler."""
    return convert_once(diffusers_folder[0], unet_batch=2)


@pytest.mark.parametrize("case", [c for c in SCHEDULERS if c[0] in ("ddim", "pndm", "dpmsolver++", "euler-turbo", "euler_ancestral-turbo", "lcm-lora", "tcd")],
                         ids=lambda c: c[0])
@pytest.mark.slow
def test_generate_out_equals_the_model_image(case, converted_sd, diffusers_folder, tmp_path, one_thread):
    """`generate OUT` with the sampler convert writes for that scheduler config: the interpreter in
    fp16 against the PyTorch image of the model folder."""
    import dataclasses

    from snapfusion_coreml.contracts.pipeline_json import PipelineManifest
    from snapfusion_coreml.convert import ConvertOptions
    from snapfusion_coreml.convert.pipeline_manifest import choose_sampling
    from snapfusion_coreml.interpreter.backend import load_package_pipeline
    from snapfusion_coreml.modeling.attention import AttentionImpl
    from snapfusion_coreml.modeling.loading import ModelFolder, load_pipeline

    _, class_name, extra, steps, guidance = case
    root = diffusers_folder[0]
    folder = _folder_with_scheduler(root, tmp_path / "m", _scheduler(class_name, extra))
    out = tmp_path / "out"
    shutil.copytree(converted_sd, out)
    manifest = PipelineManifest.read(out)
    sampling = choose_sampling(ModelFolder(folder), ConvertOptions(out=out, steps=steps, guidance=guidance, unet_batch=2))
    dataclasses.replace(manifest, sampler=sampling.record).write(out)
    reference: list[torch.Tensor] = []
    load_pipeline(folder, attention=AttentionImpl.ORIGINAL).generate(PROMPT, steps, guidance, SEED, negative_prompt=NEGATIVE,
                                                                     on_step=lambda i, t, z: reference.append(z.clone()))
    latents: list[torch.Tensor] = []
    load_package_pipeline(out, "fp16").generate(PROMPT, steps, guidance, SEED, negative_prompt=NEGATIVE,
                                                on_step=lambda i, t, z: latents.append(z.clone()))
    assert len(latents) == len(reference)
    for i, (theirs, ours) in enumerate(zip(reference, latents)):
        assert psnr(theirs.numpy(), ours.numpy()) >= 30.0, (i, psnr(theirs.numpy(), ours.numpy()))


@pytest.mark.slow
def test_converted_lcm_unet_takes_the_guidance_embedding(lcm_unet_folder, convert_once, one_thread):
    """A full LCM UNet converts with a `timestep_cond` input, unet_batch 1 and no CFG; `verify`
    checks it against PyTorch and `generate OUT` (interpreter, fp16) follows the model per step.
    (The conversion is shared with the Swift end-to-end case of the same folder.)"""
    from snapfusion_coreml.contracts.pipeline_json import PipelineManifest
    from snapfusion_coreml.interpreter.backend import load_package_pipeline
    from snapfusion_coreml.modeling.attention import AttentionImpl
    from snapfusion_coreml.modeling.loading import load_pipeline
    from snapfusion_coreml.verify.check import verify_folder

    root = lcm_unet_folder[0]
    out = convert_once(root)
    manifest = PipelineManifest.read(out)
    assert (manifest.sampler.name, manifest.sampler.default_steps, manifest.guidance.default_scale) == ("lcm", 4, 8.5)
    assert (manifest.guidance.unet_batch, manifest.guidance.embedding_dim) == (1, 16)
    assert [t.name for t in manifest.component("unet").inputs][-1] == "timestep_cond"
    assert manifest.component("unet").input("timestep_cond").shape == (1, 16)
    report = verify_folder(out, modes=("fp16",))
    assert report.ok and any(c.component == "unet" for c in report.checks), report.failures()

    reference: list[torch.Tensor] = []
    load_pipeline(root, attention=AttentionImpl.ORIGINAL).generate(PROMPT, seed=SEED,
                                                                  on_step=lambda i, t, z: reference.append(z.clone()))
    latents: list[torch.Tensor] = []
    load_package_pipeline(out, "fp16").generate(PROMPT, seed=SEED, on_step=lambda i, t, z: latents.append(z.clone()))
    assert len(latents) == len(reference) == 4
    for i, (theirs, ours) in enumerate(zip(reference, latents)):
        assert psnr(theirs.numpy(), ours.numpy()) >= 30.0, (i, psnr(theirs.numpy(), ours.numpy()))
