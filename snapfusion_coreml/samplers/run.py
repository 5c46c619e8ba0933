"""The sampling loop shared by every sampler: seeded noise, model calls, steps.

All randomness comes from one CPU generator seeded with the seed, drawn in diffusers' order (the
initial latents, then each step's noise), so `generate --seed S` equals a diffusers pipeline called
with `generator=torch.Generator("cpu").manual_seed(S)`, and Swift's TorchRandomSource reproduces it.
Image to image (an `image_latent`) draws the noise added to it instead of the initial latents and
runs the record from call `begin` on (samplers/img2img.py); the posterior sample of the encoder
was the generator's first draw (pipeline.generate_image).
"""

from __future__ import annotations

from typing import Callable

import torch

from ..config import SchedulerConfig
from ..schedule import alphas_cumprod
from .img2img import noised_start
from .record import SamplerRecord
from .steppers import make_stepper

DenoiseFn = Callable[[torch.Tensor, float], torch.Tensor]  # (UNet input (1, C, h, w), timestep) -> guided output
StepFn = Callable[[int, float, torch.Tensor], None]  # (call index, timestep, new latent)


def run_sampler(record: SamplerRecord, config: SchedulerConfig, denoise: DenoiseFn, shape: tuple[int, ...],
                generator: torch.Generator, on_step: StepFn | None = None,
                device: torch.device | str = "cpu", image_latent: torch.Tensor | None = None,
                begin: int = 0) -> torch.Tensor:
    """The clean latent (1, C, h, w) of one generation.

    Text to image (image_latent None): `generator` has drawn nothing yet. Image to image: the
    image's latent (times the latent scale factor), noised to record call `begin`, is sampled from
    call `begin` on; on_step's call index counts from 0 at `begin`.
    """

    def draw() -> torch.Tensor:
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(device)

    cumprod = alphas_cumprod(config)
    stepper = make_stepper(record, cumprod, config.prediction_type, begin)
    if image_latent is None:
        z = draw() * torch.tensor(record.init_noise_sigma, dtype=torch.float32)
    else:
        z = noised_start(record, cumprod, image_latent.cpu(), draw().cpu(), begin).to(device)
    for i in range(begin, len(record.timesteps)):
        t = record.timesteps[i]
        out = denoise(stepper.model_input(i, z), t)
        z, _ = stepper.step(i, out, z, draw)
        if on_step is not None:
            on_step(i - begin, t, z)
    return z
