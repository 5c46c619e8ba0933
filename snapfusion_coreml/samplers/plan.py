"""Planning: a sampler's lists for one step count, computed exactly as diffusers' `set_timesteps`
of the class computes them (the alphas_cumprod table in float32 torch, sigmas as float32), so a
pipeline.json record equals the scheduler state diffusers would use (tests/samplers).

    record = plan(settings, scheduler_config, steps=4)
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import SchedulerConfig
from ..errors import UserError
from .record import SamplerRecord
from .settings import SamplerSettings


def diffusers_alphas_cumprod(config: SchedulerConfig) -> torch.Tensor:
    """(N,) float32 alphas_cumprod as diffusers' schedulers build them."""
    n = config.num_train_timesteps
    if config.beta_schedule == "scaled_linear":
        betas = torch.linspace(config.beta_start**0.5, config.beta_end**0.5, n, dtype=torch.float32) ** 2
    else:
        betas = torch.linspace(config.beta_start, config.beta_end, n, dtype=torch.float32)
    return torch.cumprod(1.0 - betas, dim=0)


def spaced_timesteps(spacing: str, n: int, steps: int, offset: int) -> np.ndarray:
    """The DDIM/PNDM/Euler spacing rule (float64, noisiest first, not yet rounded to a dtype).

    trailing keeps exactly `steps` values (numpy's float arange can yield one more)."""
    if spacing == "linspace":
        return np.linspace(0, n - 1, steps)[::-1].copy()
    if spacing == "leading":
        return (np.arange(0, steps) * (n // steps)).round()[::-1].copy() + offset
    return np.round(np.arange(n, 0, -n / steps))[:steps] - 1


def plan(settings: SamplerSettings, config: SchedulerConfig, steps: int) -> SamplerRecord:
    """The record of `settings` for `steps` sampling steps on the noise schedule `config`."""
    n = config.num_train_timesteps
    if not 1 <= steps <= n:
        raise UserError(f"expected 1 <= steps <= {n}, got {steps}")
    ac = diffusers_alphas_cumprod(config)
    final = 1.0 if settings.set_alpha_to_one else float(ac[0])
    return _PLANNERS[settings.name](settings, ac, n, steps, final)


def _ddim(s: SamplerSettings, ac: torch.Tensor, n: int, steps: int, final: float) -> SamplerRecord:
    ts = spaced_timesteps(s.timestep_spacing, n, steps, s.steps_offset).round().astype(np.int64)
    previous = [max(int(t) - n // steps, -1) for t in ts]  # DDIMScheduler.step: t - N // steps
    return SamplerRecord(s, steps, tuple(float(t) for t in ts), final, previous_timesteps=tuple(previous))


def _pndm(s: SamplerSettings, ac: torch.Tensor, n: int, steps: int, final: float) -> SamplerRecord:
    if s.timestep_spacing == "trailing":
        base = (np.round(np.arange(n, 0, -n / steps))[::-1].astype(np.int64) - 1)[-steps:]
    elif s.timestep_spacing == "leading":
        base = (np.arange(0, steps) * (n // steps)).round().astype(np.int64) + s.steps_offset
    else:
        base = np.linspace(0, n - 1, steps).round().astype(np.int64)
    # PLMS with skip_prk_steps: every timestep once, the second-lowest... as PNDMScheduler orders them
    plms = np.concatenate([base[:-1], base[-2:-1], base[-1:]])[::-1] if steps > 1 else base[::-1]
    ratio = n // steps
    current, previous = [], []
    for counter, t in enumerate(int(t) for t in plms):
        if counter == 1:  # step_plms: the second call redoes the first step with the averaged output
            current.append(t + ratio)
            previous.append(t)
        else:
            current.append(t)
            previous.append(t - ratio)
    return SamplerRecord(s, steps, tuple(float(t) for t in plms), final,
                         previous_timesteps=tuple(max(p, -1) for p in previous), current_timesteps=tuple(current))


def _sigma_to_t(sigma: float, log_sigmas: np.ndarray) -> float:
    """diffusers' `_sigma_to_t`: the fractional timestep of `sigma` by log-sigma interpolation."""
    log_sigma = np.log(np.maximum(sigma, 1e-10))
    dists = log_sigma - log_sigmas[:, np.newaxis]
    low = np.cumsum((dists >= 0), axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
    w = np.clip((log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[low + 1]), 0, 1)
    return float(((1 - w) * low + w * (low + 1)).reshape(np.shape(sigma)))


def _karras(sigmas: np.ndarray, steps: int) -> np.ndarray:
    """Karras et al. (2022) rho = 7 sigmas between the schedule's extremes (diffusers' _convert_to_karras)."""
    sigma_min, sigma_max = sigmas[-1].item(), sigmas[0].item()
    ramp = np.linspace(0, 1, steps)
    rho = 7.0
    return (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho


def _final_sigma(s: SamplerSettings, ac: torch.Tensor) -> float:
    return float(((1 - ac[0]) / ac[0]) ** 0.5) if s.final_sigmas_type == "sigma_min" else 0.0


def _euler(s: SamplerSettings, ac: torch.Tensor, n: int, steps: int, final: float) -> SamplerRecord:
    """EulerDiscreteScheduler / EulerAncestralDiscreteScheduler.set_timesteps."""
    ts = spaced_timesteps(s.timestep_spacing, n, steps, s.steps_offset)
    ts = (ts.round() if s.timestep_spacing != "linspace" else ts).astype(np.float32)
    table = (((1 - ac) / ac) ** 0.5).numpy()
    sigmas = np.interp(ts, np.arange(0, len(table)), table)
    if s.use_karras_sigmas:
        sigmas = _karras(sigmas, steps)
        ts = np.array([_sigma_to_t(sigma, np.log(table)) for sigma in sigmas])
    last = _final_sigma(s, ac) if s.name == "euler" else 0.0
    sigmas32 = np.concatenate([sigmas, [last]]).astype(np.float32)
    max_sigma = torch.from_numpy(sigmas32).max()
    init = max_sigma if s.timestep_spacing in ("linspace", "trailing") else (max_sigma**2 + 1) ** 0.5
    return SamplerRecord(s, steps, tuple(float(t) for t in ts.astype(np.float32)), final, float(init), True,
                         sigmas=tuple(float(x) for x in sigmas32))


def _dpm(s: SamplerSettings, ac: torch.Tensor, n: int, steps: int, final: float) -> SamplerRecord:
    """DPMSolverMultistepScheduler.set_timesteps (lambda_min_clipped -inf: the whole schedule)."""
    if s.timestep_spacing == "linspace":
        ts = np.linspace(0, n - 1, steps + 1).round()[::-1][:-1].copy().astype(np.int64)
    elif s.timestep_spacing == "leading":
        ratio = n // (steps + 1)
        ts = (np.arange(0, steps + 1) * ratio).round()[::-1][:-1].copy().astype(np.int64) + s.steps_offset
    else:
        ts = np.arange(n, 0, -n / steps).round().copy().astype(np.int64) - 1
    table = (((1 - ac) / ac) ** 0.5).numpy()
    log_sigmas = np.log(table)
    if s.use_karras_sigmas:
        sigmas = _karras(np.flip(table).copy(), steps)
        ts = np.array([_sigma_to_t(sigma, log_sigmas) for sigma in sigmas]).round()
    else:
        sigmas = np.interp(ts, np.arange(0, len(table)), table)
    sigmas32 = np.concatenate([sigmas, [_final_sigma(s, ac)]]).astype(np.float32)
    return SamplerRecord(s, steps, tuple(float(t) for t in ts.astype(np.int64)), final,
                         sigmas=tuple(float(x) for x in sigmas32))


def _consistency(s: SamplerSettings, ac: torch.Tensor, n: int, steps: int, final: float) -> SamplerRecord:
    """LCMScheduler / TCDScheduler.set_timesteps: `steps` evenly spaced indices into the
    `original_inference_steps` skipping grid."""
    original = s.original_inference_steps
    if original > n:
        raise UserError(f"expected original_inference_steps <= {n}, got {original}")
    if steps > original:
        raise UserError(f"expected at most {original} steps for {s.name} (its original_inference_steps), got {steps}")
    origin = (np.asarray(list(range(1, original + 1))) * (n // original) - 1)[::-1].copy()
    indices = np.floor(np.linspace(0, len(origin), num=steps, endpoint=False)).astype(np.int64)
    ts = [int(t) for t in origin[indices]]
    end = -1 if s.name == "lcm" else 0  # TCD steps to timestep 0 after the last call, LCM returns its estimate
    return SamplerRecord(s, steps, tuple(float(t) for t in ts), final, previous_timesteps=tuple(ts[1:]) + (end,))


_PLANNERS = {"ddim": _ddim, "pndm": _pndm, "dpmsolver++": _dpm, "euler": _euler, "euler_ancestral": _euler,
             "lcm": _consistency, "tcd": _consistency}
