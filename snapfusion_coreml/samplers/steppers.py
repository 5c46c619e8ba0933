"""The step arithmetic of each sampler over a planned `SamplerRecord`, in float64 on float32
latents (the result rounded back to float32). Each stepper equals the diffusers class its record
names (docs/contracts.md section 3 spells the formulas; tests/samplers compares per-step latents).

A stepper is made once per generation (multistep samplers keep earlier model outputs):

    stepper = make_stepper(record, alphas_cumprod(config), "epsilon")
    z_in = stepper.model_input(i, z)
    z, x0 = stepper.step(i, unet(z_in, record.timesteps[i]), z, draw_noise)
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from ..errors import UserError
from .record import SamplerRecord

NoiseFn = Callable[[], torch.Tensor]  # the next (1, C, h, w) draw of the generation's generator
_REGISTRY: dict[str, type["Stepper"]] = {}


def stepper(name: str):
    """Register a Stepper class for the record name `name`."""
    def register(cls: type["Stepper"]) -> type["Stepper"]:
        _REGISTRY[name] = cls
        return cls
    return register


def make_stepper(record: SamplerRecord, cumprod: np.ndarray, prediction_type: str, begin: int = 0) -> "Stepper":
    """The stepper of one generation whose first call is record index `begin` (0; image to image: later)."""
    if prediction_type not in ("epsilon", "v_prediction"):
        raise UserError(f"expected prediction_type epsilon or v_prediction, got {prediction_type!r}")
    stepper = _REGISTRY[record.name](record, cumprod, prediction_type)
    stepper.begin = begin
    return stepper


class Stepper:
    """Base: alpha_cumprod lookups and the model-output conversions all samplers share."""

    begin = 0  # the record index of the generation's first call (image to image starts later)

    def __init__(self, record: SamplerRecord, cumprod: np.ndarray, prediction_type: str):
        self.record, self.cumprod, self.prediction_type = record, cumprod, prediction_type

    def alpha_cumprod(self, t: int) -> float:
        return self.record.final_alpha_cumprod if t < 0 else float(self.cumprod[t])

    def model_input(self, i: int, z: torch.Tensor) -> torch.Tensor:
        """What the UNet takes at call i (the Euler family scales it)."""
        if not self.record.scale_model_input:
            return z
        sigma = torch.tensor(self.record.sigmas[i], dtype=torch.float32)
        return z / ((sigma**2 + 1) ** 0.5)

    def x_eps(self, out: torch.Tensor, z: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x estimate, eps estimate) from the raw output at timestep t, alpha_cumprod form."""
        a2 = self.alpha_cumprod(t)
        a, s = math.sqrt(a2), math.sqrt(1.0 - a2)
        if self.prediction_type == "v_prediction":
            return a * z - s * out, a * out + s * z
        return (z - s * out) / a, out

    def clip(self, x: torch.Tensor) -> torch.Tensor:
        r = self.record.settings.clip_sample
        return x if r is None else x.clamp(-r, r)

    def step(self, i: int, out: torch.Tensor, z: torch.Tensor, noise: NoiseFn) -> tuple[torch.Tensor, torch.Tensor]:
        """Call i's output `out` at latent `z` -> (next latent, current x estimate), both float32."""
        z_next, x = self._step(i, out.double(), z.double(), noise)
        return z_next.float(), x.float()

    def _step(self, i: int, out: torch.Tensor, z: torch.Tensor, noise: NoiseFn) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


@stepper("ddim")
class DDIM(Stepper):
    """DDIMScheduler.step, eta 0: z' = a' x + s' eps (x clipped when clip_sample)."""

    def _step(self, i, out, z, noise):
        x, eps = self.x_eps(out, z, int(self.record.timesteps[i]))
        x = self.clip(x)
        a2 = self.alpha_cumprod(self.record.previous_timesteps[i])
        return math.sqrt(a2) * x + math.sqrt(1.0 - a2) * eps, x


@stepper("pndm")
class PNDM(Stepper):
    """PNDMScheduler.step_plms: linear multistep over the last four raw outputs.

    Its counter starts at the first call. From a later `begin` (image to image) diffusers keeps
    counting from 0 over timesteps[begin:], so the record's current/previous lists (those of a
    start at 0) do not apply: call j = i - begin steps timestep t = timesteps[i] to t - ratio,
    except j == 1, which redoes t + ratio -> t (ratio = num_train_timesteps // steps).
    """

    def __init__(self, *args):
        super().__init__(*args)
        self.outputs: list[torch.Tensor] = []
        self.first_sample: torch.Tensor | None = None

    def _timesteps(self, i: int) -> tuple[int, int]:
        """(current, previous) timestep of record call i."""
        if self.begin == 0:
            return self.record.current_timesteps[i], self.record.previous_timesteps[i]
        t, ratio = int(self.record.timesteps[i]), len(self.cumprod) // self.record.default_steps
        return (t + ratio, t) if i - self.begin == 1 else (t, max(t - ratio, -1))

    def _step(self, i, out, z, noise):
        j = i - self.begin  # diffusers' counter
        if j != 1:
            self.outputs = self.outputs[-3:] + [out]
        ets = self.outputs
        if len(ets) == 1 and j == 0:
            combined, self.first_sample = out, z
        elif len(ets) == 1 and j == 1:  # redo step 0 with the mean of both outputs, from its start
            combined, z = (out + ets[-1]) / 2, self.first_sample
        elif len(ets) == 2:
            combined = (3 * ets[-1] - ets[-2]) / 2
        elif len(ets) == 3:
            combined = (23 * ets[-1] - 16 * ets[-2] + 5 * ets[-3]) / 12
        else:
            combined = (55 * ets[-1] - 59 * ets[-2] + 37 * ets[-3] - 9 * ets[-4]) / 24
        t, t_prev = self._timesteps(i)
        a_t, a_prev = self.alpha_cumprod(t), self.alpha_cumprod(t_prev)
        eps = combined
        if self.prediction_type == "v_prediction":
            eps = math.sqrt(a_t) * combined + math.sqrt(1 - a_t) * z
        # PNDM's _get_prev_sample (formula (9) of Liu et al. 2022)
        denom = a_t * math.sqrt(1 - a_prev) + math.sqrt(a_t * (1 - a_t) * a_prev)
        z_next = math.sqrt(a_prev / a_t) * z - (a_prev - a_t) * eps / denom
        x = (z - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
        return z_next, x


class SigmaStepper(Stepper):
    """Samplers stepping in sigma = sqrt((1 - ac) / ac) terms (the Euler family, DPM-Solver++)."""

    def sigma(self, i: int) -> float:
        return self.record.sigmas[i]

    def x_sigma(self, out: torch.Tensor, z: torch.Tensor, sigma: float) -> torch.Tensor:
        """The x estimate of the Euler schedulers (z at sigma is x + sigma eps)."""
        if self.prediction_type == "v_prediction":
            return out * (-sigma / math.sqrt(sigma**2 + 1)) + z / (sigma**2 + 1)
        return z - sigma * out


@stepper("euler")
class Euler(SigmaStepper):
    """EulerDiscreteScheduler.step (s_churn 0): z' = z + (z - x) / sigma * (sigma' - sigma)."""

    def _step(self, i, out, z, noise):
        sigma, sigma_next = self.sigma(i), self.sigma(i + 1)
        x = self.x_sigma(out, z, sigma)
        return z + (z - x) / sigma * (sigma_next - sigma), x


@stepper("euler_ancestral")
class EulerAncestral(SigmaStepper):
    """EulerAncestralDiscreteScheduler.step: an Euler step to sigma_down, then fresh noise of sigma_up."""

    def _step(self, i, out, z, noise):
        sigma, sigma_next = self.sigma(i), self.sigma(i + 1)
        x = self.x_sigma(out, z, sigma)
        sigma_up = math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2)
        sigma_down = math.sqrt(sigma_next**2 - sigma_up**2)
        z_next = z + (z - x) / sigma * (sigma_down - sigma)
        return z_next + noise().double() * sigma_up, x


@stepper("dpmsolver++")
class DPMSolverPlusPlus(SigmaStepper):
    """DPMSolverMultistepScheduler with algorithm_type dpmsolver++ (data prediction), order 1 or 2."""

    def __init__(self, *args):
        super().__init__(*args)
        self.x_history: list[torch.Tensor] = []
        self.lower_order_nums = 0

    @staticmethod
    def alpha_sigma(sigma: float) -> tuple[float, float]:
        alpha = 1.0 / math.sqrt(sigma**2 + 1)
        return alpha, sigma * alpha

    def lam(self, i: int) -> float:
        alpha, sigma = self.alpha_sigma(self.sigma(i))
        return math.log(alpha) - (math.log(sigma) if sigma > 0 else -math.inf)

    def _step(self, i, out, z, noise):
        s, n = self.record.settings, len(self.record.timesteps)
        alpha_i, sigma_i = self.alpha_sigma(self.sigma(i))
        x = alpha_i * z - sigma_i * out if self.prediction_type == "v_prediction" else (z - sigma_i * out) / alpha_i
        self.x_history = (self.x_history + [x])[-2:]
        lower_final = i == n - 1 and (s.euler_at_final or (s.lower_order_final and n < 15) or s.final_sigmas_type == "zero")
        alpha_t, sigma_t = self.alpha_sigma(self.sigma(i + 1))
        h = self.lam(i + 1) - self.lam(i)
        phi = math.expm1(-h) if math.isfinite(h) else -1.0  # exp(-h) - 1; h = inf at sigma 0
        first = (sigma_t / sigma_i) * z - (alpha_t * phi) * x
        if s.solver_order == 1 or self.lower_order_nums < 1 or lower_final:
            z_next = first
        else:  # second order (the highest supported, so diffusers' lower_order_second changes nothing)
            m0, m1 = self.x_history[-1], self.x_history[-2]
            r0 = (self.lam(i) - self.lam(i - 1)) / h
            d1 = (1.0 / r0) * (m0 - m1)
            if s.solver_type == "midpoint":
                z_next = first - 0.5 * (alpha_t * phi) * d1
            else:
                z_next = first + (alpha_t * (phi / h + 1.0)) * d1
        self.lower_order_nums = min(self.lower_order_nums + 1, s.solver_order)
        return z_next, x


@stepper("lcm")
class LCM(Stepper):
    """LCMScheduler.step: the consistency boundary condition, then re-noise to the next timestep
    (the last call returns the denoised estimate)."""

    def scalings(self, t: int) -> tuple[float, float]:
        scaled = t * self.record.settings.timestep_scaling
        return 0.25 / (scaled**2 + 0.25), scaled / math.sqrt(scaled**2 + 0.25)  # sigma_data = 0.5

    def _step(self, i, out, z, noise):
        t = int(self.record.timesteps[i])
        x, _ = self.x_eps(out, z, t)
        c_skip, c_out = self.scalings(t)
        denoised = c_out * self.clip(x) + c_skip * z
        if i == len(self.record.timesteps) - 1:
            return denoised, denoised
        a2 = self.alpha_cumprod(self.record.previous_timesteps[i])
        return math.sqrt(a2) * denoised + math.sqrt(1 - a2) * noise().double(), denoised


@stepper("tcd")
class TCD(Stepper):
    """TCDScheduler.step with gamma = eta: to timestep s = floor((1 - gamma) t'), then forward
    noise back up to t' (not after the last call)."""

    def _step(self, i, out, z, noise):
        t, t_prev = int(self.record.timesteps[i]), self.record.previous_timesteps[i]
        eta = self.record.settings.eta
        t_s = math.floor((1 - eta) * t_prev)
        x, eps = self.x_eps(out, z, t)
        a_s = self.alpha_cumprod(t_s)
        z_s = math.sqrt(a_s) * x + math.sqrt(1 - a_s) * eps
        if eta > 0 and i != len(self.record.timesteps) - 1:
            ratio = self.alpha_cumprod(t_prev) / a_s
            return math.sqrt(ratio) * z_s + math.sqrt(1 - ratio) * noise().double(), x
        return z_s, x
