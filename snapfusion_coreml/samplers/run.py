"""The sampling loop shared by every sampler: seeded noise, model calls, steps.

All randomness comes from one CPU generator seeded with the seed, drawn in diffusers' order (the
initial latents, then each step's noise), so `generate --seed S` equals a diffusers pipeline called
with `generator=torch.Generator("cpu").manual_seed(S)`, and Swift's TorchRandomSource reproduces it.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..config import SchedulerConfig
from ..schedule import alphas_cumprod
from .record import SamplerRecord
from .steppers import make_stepper

DenoiseFn = Callable[[torch.Tensor, float], torch.Tensor]  # (UNet input (1, C, h, w), timestep) -> guided output
StepFn = Callable[[int, float, torch.Tensor], None]  # (call index, timestep, new latent)


def run_sampler(record: SamplerRecord, config: SchedulerConfig, denoise: DenoiseFn, shape: tuple[int, ...],
                generator: torch.Generator, on_step: StepFn | None = None,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """The clean latent (1, C, h, w) of one generation; `generator` has drawn nothing yet."""

    def draw() -> torch.Tensor:
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(device)

    stepper = make_stepper(record, alphas_cumprod(config), config.prediction_type)
    z = draw() * torch.tensor(record.init_noise_sigma, dtype=torch.float32)
    for i, t in enumerate(record.timesteps):
        out = denoise(stepper.model_input(i, z), t)
        z, _ = stepper.step(i, out, z, draw)
        if on_step is not None:
            on_step(i, t, z)
    return z
