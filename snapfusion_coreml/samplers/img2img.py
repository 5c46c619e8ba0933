"""Image to image over a planned sampler record: where sampling begins for a strength, and the
noised start latent (docs/contracts.md section 3, image to image). The reference is diffusers'
StableDiffusionImg2ImgPipeline (`get_timesteps`, `prepare_latents`) with the same scheduler;
every supported sampler has diffusers' `order` 1, so `begin` is t_start itself.

    begin = start_index(steps, strength)             # a UserError when no step would run
    z = noised_start(record, cumprod, x0, noise, begin)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import UserError
from .record import SamplerRecord
from .settings import SIGMA_SAMPLERS


def check_strength(strength: float) -> float:
    """strength in (0, 1] (the share of the schedule that runs), else one UserError line."""
    if not isinstance(strength, (int, float)) or isinstance(strength, bool) or not math.isfinite(strength) \
            or not 0.0 < strength <= 1.0:
        raise UserError(f"expected --strength in (0, 1], got {strength}")
    return float(strength)


def start_index(steps: int, strength: float) -> int:
    """The record index image to image begins at: init = min(int(steps * strength), steps),
    t_start = steps - init (diffusers' get_timesteps); a UserError when no step is left."""
    strength = check_strength(strength)
    init = min(int(steps * strength), steps)
    begin = max(steps - init, 0)
    if steps - begin < 1:
        raise UserError(f"expected --strength {strength} with --steps {steps} to leave at least one step "
                        f"(int(steps * strength) = {init}): raise the strength or the steps")
    return begin


def noised_start(record: SamplerRecord, cumprod: np.ndarray, x0: torch.Tensor, noise: torch.Tensor,
                 begin: int) -> torch.Tensor:
    """The image latent x0 (already times the latent scale factor) noised to the record's
    timestep `begin` as the sampler's diffusers class `add_noise`s it (not scaled by
    init_noise_sigma), float32."""
    x0, noise = x0.double(), noise.double()
    if record.name in ("euler", "euler_ancestral"):  # EulerDiscreteScheduler.add_noise: x + sigma * e
        z = x0 + record.sigmas[begin] * noise
    elif record.name in SIGMA_SAMPLERS:  # DPMSolverMultistepScheduler.add_noise: alpha_t x + sigma_t e
        sigma = record.sigmas[begin]
        alpha_t = 1.0 / math.sqrt(sigma**2 + 1.0)
        z = alpha_t * x0 + (sigma * alpha_t) * noise
    else:  # DDIM, PNDM, LCM, TCD: alphas_cumprod at the integer timestep
        a2 = float(cumprod[int(record.timesteps[begin])])
        z = math.sqrt(a2) * x0 + math.sqrt(1.0 - a2) * noise
    return z.float()
