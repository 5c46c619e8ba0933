"""Noise schedule, timestep spacing, DDIM (epsilon and v-prediction) and classifier-free guidance.

The single source of truth: training (train/losses.py), the PyTorch reference pipeline, the
timesteps written into pipeline.json and the Swift sampler (ios_app, tested against golden values
produced from this module) all use these functions.

Conventions (SnapFusion paper Sec. 4):
  - variance preserving: alpha_t = sqrt(alphas_cumprod[t]), sigma_t = sqrt(1 - alphas_cumprod[t]);
  - v = alpha_t * eps - sigma_t * x;
  - guidance scale w as in diffusers: guided = uncond + w * (cond - uncond), w = 1 is no guidance;
  - DDIM with eta = 0; after the last step the sample is the model's x estimate (alpha = 1);
  - timestep spacing "trailing" by default: for 8 steps of a 1000-step schedule
    999, 874, 749, 624, 499, 374, 249, 124. SnapFusion does not publish its mapping; trailing
    starts at the noisiest training timestep, which distilled few-step models need.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .config import SchedulerConfig
from .errors import UserError
from .guidance import uses_guidance

FINAL_ALPHA_CUMPROD = 1.0  # alpha of "timestep -1": the last DDIM step returns x_hat


def alphas_cumprod(config: SchedulerConfig) -> np.ndarray:
    """(num_train_timesteps,) float64 cumulative product of (1 - beta)."""
    n = config.num_train_timesteps
    if config.beta_schedule == "scaled_linear":
        betas = np.linspace(config.beta_start**0.5, config.beta_end**0.5, n, dtype=np.float64) ** 2
    else:
        betas = np.linspace(config.beta_start, config.beta_end, n, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def timesteps(config: SchedulerConfig, steps: int) -> list[int]:
    """The sampler's timesteps, noisiest first. The one spacing function of the project."""
    n = config.num_train_timesteps
    if not 1 <= steps <= n:
        raise UserError(f"expected 1 <= steps <= {n}, got {steps}")
    if config.timestep_spacing == "trailing":
        # float arange can yield one extra value (e.g. 61 steps of 1000): keep exactly `steps`
        ts = np.round(np.arange(n, 0, -n / steps)[:steps]).astype(np.int64) - 1
    elif config.timestep_spacing == "leading":
        ts = (np.arange(0, steps) * (n // steps)).round()[::-1].astype(np.int64) + config.steps_offset
    else:  # linspace
        ts = np.linspace(0, n - 1, steps).round()[::-1].astype(np.int64)
    return [int(t) for t in ts]


def alpha_sigma(cumprod: np.ndarray | torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """alpha_t, sigma_t for integer timesteps t (any shape); t < 0 means the final (clean) step."""
    table = torch.as_tensor(cumprod, dtype=torch.float64, device=t.device)
    t = t.long()
    a2 = torch.where(t >= 0, table[t.clamp(min=0)], torch.full_like(table[:1], FINAL_ALPHA_CUMPROD).expand(t.shape))
    return a2.sqrt(), (1.0 - a2).clamp(min=0).sqrt()


def to_x_eps(model_output: torch.Tensor, z_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor,
             prediction_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_hat, eps_hat) from the model's raw prediction. alpha/sigma broadcast against z_t."""
    if prediction_type == "v_prediction":
        x_hat = alpha * z_t - sigma * model_output
        eps_hat = sigma * z_t + alpha * model_output
    elif prediction_type == "epsilon":
        eps_hat = model_output
        x_hat = (z_t - sigma * model_output) / alpha
    else:
        raise UserError(f"expected prediction_type epsilon or v_prediction, got {prediction_type!r}")
    return x_hat, eps_hat


def v_target(x: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """v = alpha_t * eps - sigma_t * x."""
    return alpha * eps - sigma * x


def ddim_step(model_output: torch.Tensor, z_t: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor,
              cumprod: np.ndarray, prediction_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One deterministic DDIM step t -> t_prev (t_prev < 0: the end). Returns (z_prev, x_hat).

    Args: model_output, z_t (B, C, H, W); t, t_prev (B,) integer timesteps.
    """
    view = (-1,) + (1,) * (z_t.dim() - 1)
    a_t, s_t = (v.view(view) for v in alpha_sigma(cumprod, t))
    a_p, s_p = (v.view(view) for v in alpha_sigma(cumprod, t_prev))
    x_hat, eps_hat = to_x_eps(model_output.double(), z_t.double(), a_t, s_t, prediction_type)
    z_prev = a_p * x_hat + s_p * eps_hat
    return z_prev.to(z_t.dtype), x_hat.to(z_t.dtype)


def guide(cond: torch.Tensor, uncond: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """Classifier-free guidance, diffusers' convention: w * cond - (w - 1) * uncond."""
    return uncond + scale * (cond - uncond)


def guided_prediction(cond: torch.Tensor, uncond: torch.Tensor | None, scale: float | torch.Tensor) -> torch.Tensor:
    """The prediction sampling and training use: guide(cond, uncond, w) where w > 1, else cond.

    `scale` is a float or a per-sample tensor broadcastable to cond ((B, 1, 1, 1)); `uncond` may be
    None only when no w needs it."""
    if isinstance(scale, torch.Tensor):
        if uncond is None:
            assert not bool((scale > 1.0).any()), "an unconditional prediction is needed for w > 1"
            return cond
        return torch.where(scale > 1.0, guide(cond, uncond, scale), cond)
    return guide(cond, uncond, scale) if uses_guidance(scale) else cond


def per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, 1) (as many trailing ones as `like` has extra dims), in like's dtype."""
    return values.to(like.dtype).view((-1,) + (1,) * (like.dim() - 1))


UNetCall = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (z, t, context) -> prediction


def cfg_batch(unet: UNetCall, z: torch.Tensor, t: torch.Tensor, uncond: torch.Tensor, cond: torch.Tensor,
              scale: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Classifier-free guidance as ONE UNet call (the app's convention): the batch [z; z] at [t; t]
    with the contexts [uncond; cond], split into its unconditional and conditional halves and
    combined by guided_prediction. Returns (guided prediction, conditional prediction).

    `t` is (B,); `scale` is a float or a per-sample (B,) tensor (cast to the prediction's dtype)."""
    out_uncond, out_cond = unet(torch.cat([z, z]), torch.cat([t, t]), torch.cat([uncond, cond])).chunk(2)
    if isinstance(scale, torch.Tensor):
        scale = per_sample(scale, out_cond)
    return guided_prediction(out_cond, out_uncond, scale), out_cond


def guidance_embedding(scale: float, dim: int) -> torch.Tensor:
    """(1, dim) float32 guidance-scale embedding of UNets with `time_cond_proj_dim` (full LCM UNets):
    diffusers' `get_guidance_scale_embedding(w - 1, dim)`, sinusoidal in 1000 (w - 1). Swift twin:
    ios_app/Sources/SnapFusionKit/Scheduler (docs/contracts.md section 3)."""
    w = torch.tensor([scale - 1.0], dtype=torch.float32) * 1000.0
    half = dim // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float32) * -(torch.log(torch.tensor(10000.0)) / (half - 1)))
    args = w[:, None] * freq[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return torch.nn.functional.pad(emb, (0, 1)) if dim % 2 else emb


def initial_latents(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """torch.randn on a CPU generator seeded by `seed`; the Swift RNG (ios_app TorchRandomSource)
    reproduces it bit for bit where torch runs its AVX2 kernel (README "Generate")."""
    generator = torch.Generator("cpu").manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


DenoiseFn = Callable[[torch.Tensor, int], torch.Tensor]  # (z_t (B,4,h,w), t) -> guided prediction


def sample(denoise: DenoiseFn, latents: torch.Tensor, config: SchedulerConfig, steps: int,
           on_step: Callable[[int, int, torch.Tensor], None] | None = None,
           ts: list[int] | None = None) -> torch.Tensor:
    """Run DDIM from pure noise `latents` to the clean latent.

    `denoise(z_t, t)` returns the (already guided) model prediction. `on_step(i, t, z)` is called
    after each step with the new latent. `ts` gives the timesteps explicitly (pipeline.json's
    `sampler.timesteps`, noisiest first); default `timesteps(config, steps)`.
    """
    cumprod = alphas_cumprod(config)
    ts = timesteps(config, steps) if ts is None else [int(t) for t in ts]
    z = latents
    for i, t in enumerate(ts):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        batch = z.shape[0]
        out = denoise(z, t)
        z, _ = ddim_step(out, z, torch.full((batch,), t), torch.full((batch,), t_prev), cumprod, config.prediction_type)
        if on_step is not None:
            on_step(i, t, z)
    return z
