"""`generate MODEL --init-image` against diffusers' StableDiffusionImg2ImgPipeline, for every
sampler (tests/samplers/test_generate_vs_diffusers.py's scheduler configs) and a full LCM UNet
with a guidance embedding: same prompt, negative prompt, seed, steps, strength and guidance, the
init image already at the model's size. The image and the latent after every step must reach
40 dB (the tiny decoder's images are low-contrast, so the per-step latents are what discriminate);
the VAE encoder module must equal AutoencoderKL.encode to float32 rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.img2img.images import init_image
from tests.samplers.cases import SD15
from tests.samplers.test_generate_vs_diffusers import (
    NEGATIVE,
    PROMPT,
    SCHEDULERS,
    SEED,
    _assert_same,
    _folder_with_scheduler,
    _scheduler,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest on a shared machine



def _strength(steps: int) -> float:
    return 1.0 if steps == 1 else 0.75  # one step: only strength 1 leaves a step to run


# (id, class, extra, steps, guidance, strength): every sampler (at most 6 steps: 4 calls from record
# index 2), plus PNDM starting at record index 1 and DDIM at strength 1 (index 0)
CASES = [(*case[:3], min(case[3], 6), case[4], _strength(case[3])) for case in SCHEDULERS] + [
    ("pndm-begin-1", "PNDMScheduler", {"steps_offset": 1, "set_alpha_to_one": False, "skip_prk_steps": True}, 5, 7.5, 0.8),
    ("ddim-strength-1", "DDIMScheduler", {"steps_offset": 1, "set_alpha_to_one": False, "clip_sample": False}, 4, 7.5, 1.0),
]


def _diffusers_img2img(root, unet, vae, text, scheduler, steps, guidance, strength, image, eta=None, negative=NEGATIVE
                       ) -> tuple[np.ndarray, list[torch.Tensor]]:
    """(uint8 image, the latents after each step) of StableDiffusionImg2ImgPipeline."""
    from diffusers import StableDiffusionImg2ImgPipeline

    from snapfusion_coreml.tokenizer import load_tokenizer

    pipe = StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=text, tokenizer=load_tokenizer(root / "tokenizer"), unet=unet,
                                          scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    latents: list[torch.Tensor] = []

    def record(_pipe, _i, _t, kwargs):
        latents.append(kwargs["latents"].clone())
        return kwargs

    call = dict(prompt=PROMPT, image=image, strength=strength, num_inference_steps=steps, guidance_scale=guidance,
                output_type="np", generator=torch.Generator("cpu").manual_seed(SEED), callback_on_step_end=record)
    if negative is not None:
        call["negative_prompt"] = negative
    if eta is not None:
        call["eta"] = eta
    with torch.no_grad():
        out = pipe(**call).images[0]
    return (out * 255).round().astype(np.uint8), latents


def test_encoder_equals_autoencoder_kl_encode(diffusers_folder):
    from snapfusion_coreml.modeling.loading import ModelFolder

    root, _, vae, _ = diffusers_folder
    encoder = ModelFolder(root).load("encoder")
    for shape in ((1, 3, 64, 64), (1, 3, 48, 80)):
        x = torch.rand(shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
        with torch.no_grad():
            dist = vae.encode(x).latent_dist
            moments = encoder(x)
        mean, logvar = moments.chunk(2, dim=1)
        assert moments.shape == (1, 8, shape[2] // 8, shape[3] // 8)
        scale = float(dist.mean.abs().max())
        assert float((mean - dist.mean).abs().max()) <= 1e-6 * max(scale, 1.0)
        assert float((logvar - dist.logvar).abs().max()) <= 1e-6 * max(float(dist.logvar.abs().max()), 1.0)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_generate_init_image_equals_img2img_pipeline(case, diffusers_folder, tmp_path):
    from snapfusion_coreml.modeling.attention import AttentionImpl
    from snapfusion_coreml.modeling.loading import load_pipeline

    _, class_name, extra, steps, guidance, strength = case
    root, unet, vae, text = diffusers_folder
    folder = _folder_with_scheduler(root, tmp_path / "m", _scheduler(class_name, extra))
    eta = 0.3 if class_name == "TCDScheduler" else None  # ours defaults to the TCD authors' gamma
    image = init_image()
    expected = _diffusers_img2img(root, unet, vae, text, _scheduler(class_name, extra), steps, guidance, strength, image, eta)
    ours = load_pipeline(folder, attention=AttentionImpl.ORIGINAL)
    latents: list[torch.Tensor] = []
    got = ours.generate(PROMPT, steps, guidance, SEED, negative_prompt=NEGATIVE, init_image=image, strength=strength,
                        on_step=lambda i, t, z: latents.append(z.clone()))
    assert len(latents) == len(expected[1]) >= 1
    _assert_same(expected, got, latents)


def test_full_lcm_unet_equals_img2img_pipeline(lcm_unet_folder):
    """A UNet with a guidance embedding: the img2img pipeline feeds timestep_cond and runs no CFG batch."""
    from diffusers import LCMScheduler

    from snapfusion_coreml.modeling.attention import AttentionImpl
    from snapfusion_coreml.modeling.loading import load_pipeline

    root, unet, vae, text = lcm_unet_folder
    ours = load_pipeline(root, attention=AttentionImpl.ORIGINAL)
    image = init_image(seed=2)
    for steps, guidance, strength in ((4, 8.5, 0.5), (4, 3.0, 1.0)):
        expected = _diffusers_img2img(root, unet, vae, text, LCMScheduler(**SD15, set_alpha_to_one=True), steps, guidance,
                                      strength, image, negative=None)
        latents: list[torch.Tensor] = []
        got = ours.generate(PROMPT, steps, guidance, SEED, init_image=image, strength=strength,
                            on_step=lambda i, t, z, seen=latents: seen.append(z.clone()))
        _assert_same(expected, got, latents)


def test_text_to_image_is_unchanged_by_the_encoder(diffusers_folder):
    """The same folder draws the same text-to-image latents whether or not its pipeline holds an encoder."""
    import dataclasses

    from snapfusion_coreml.modeling.attention import AttentionImpl
    from snapfusion_coreml.modeling.loading import load_pipeline

    ours = load_pipeline(diffusers_folder[0], attention=AttentionImpl.ORIGINAL)
    assert ours.encoder is not None
    with_encoder = ours.generate(PROMPT, 3, 7.5, SEED)
    without = dataclasses.replace(ours, encoder=None).generate(PROMPT, 3, 7.5, SEED)
    assert np.array_equal(with_encoder, without)
