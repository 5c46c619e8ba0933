"""The training formulas of the SnapFusion paper (Sec. 3.1 robust training, Sec. 4 step
distillation), each unit-tested against a hand computation.

Conventions (shared with schedule.py, which this module reuses and never re-implements):
  - variance preserving: alpha_t^2 + sigma_t^2 = 1, alpha_t = sqrt(alphas_cumprod[t]);
  - z_t = alpha_t * x + sigma_t * eps;  v = alpha_t * eps - sigma_t * x;
  - guidance scale w as in diffusers: guided = w * cond - (w - 1) * uncond (w = 1: no guidance).
    Meng et al. / LCM write (1 + w) * c - w * u, i.e. their w is our w - 1;
  - the end of sampling is "timestep -1" with alpha = 1, sigma = 0 (schedule.FINAL_ALPHA_CUMPROD).

Tensors are (B, C, H, W); per-sample coefficients (alpha, sigma, w, weights) are (B,) and are
broadcast with `per_sample`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..schedule import alpha_sigma, guided_prediction, per_sample, to_x_eps, v_target

SNR_TRUNCATION = 1.0  # max(SNR, 1): the official progressive-distillation "snr_trunc" weight


def diffuse(x: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The forward process z_t = alpha_t * x + sigma_t * eps. alpha, sigma (B,)."""
    return per_sample(alpha, x) * x + per_sample(sigma, x) * eps


def prediction_target(x: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor,
                      prediction_type: str) -> torch.Tensor:
    """What a model of `prediction_type` should output for z_t = alpha x + sigma eps: v or eps."""
    if prediction_type == "v_prediction":
        return v_target(x, eps, per_sample(alpha, x), per_sample(sigma, x))
    return eps


def estimates(model_output: torch.Tensor, z_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor,
              prediction_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_hat, eps_hat) from a raw prediction; schedule.to_x_eps with (B,) coefficients."""
    return to_x_eps(model_output, z_t, per_sample(alpha, z_t), per_sample(sigma, z_t), prediction_type)


def ddim_from_estimates(x_hat: torch.Tensor, eps_hat: torch.Tensor, alpha_prev: torch.Tensor,
                        sigma_prev: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM update z_s = alpha_s * x_hat + sigma_s * eps_hat (eta = 0)."""
    return per_sample(alpha_prev, x_hat) * x_hat + per_sample(sigma_prev, x_hat) * eps_hat


def guided(cond: torch.Tensor, uncond: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """v_tilde = w * v(c) - (w - 1) * v(null) with a per-sample scale w (B,); w <= 1 keeps v(c)
    (schedule.guided_prediction, the rule sampling and the Swift pipeline use)."""
    return guided_prediction(cond, uncond, per_sample(w, cond))


def sample_guidance(batch: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """w ~ U[low, high] per sample (diffusers' convention), float32 (B,)."""
    return low + (high - low) * torch.rand(batch, generator=generator)


def x_target_from_teacher(z_t: torch.Tensor, z_end: torch.Tensor, teacher_x_hat: torch.Tensor,
                          alpha_t: torch.Tensor, sigma_t: torch.Tensor, alpha_end: torch.Tensor,
                          sigma_end: torch.Tensor) -> torch.Tensor:
    """The x that takes z_t to the teacher's z_t'' in ONE DDIM step (Salimans & Ho, 2022).

    x_target = (z_t'' - (sigma_t''/sigma_t) z_t) / (alpha_t'' - (sigma_t''/sigma_t) alpha_t).
    At the last step (t'' is the end, sigma_t'' = 0) the target is the teacher's last x_hat, set
    explicitly so the division can never produce inf/NaN (as the official code's jnp.where).

    Args: z_t, z_end, teacher_x_hat (B, C, H, W); alpha_*, sigma_* (B,).
    """
    ratio = sigma_end / sigma_t
    numerator = z_end - per_sample(ratio, z_t) * z_t
    denominator = alpha_end - ratio * alpha_t
    last = sigma_end == 0
    safe = torch.where(last, torch.ones_like(denominator), denominator)
    target = numerator / per_sample(safe, z_t)
    return torch.where(per_sample(last, z_t).bool(), teacher_x_hat, target)


def teacher_x_target(predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], z_t: torch.Tensor,
                     path: torch.Tensor, cumprod: np.ndarray, prediction_type: str) -> torch.Tensor:
    """Run the teacher's DDIM steps t -> t' -> ... -> t'' from z_t and return the x-space target.

    Args:
        predict: (z (B, C, H, W), t (B,)) -> the teacher's (already guided) raw prediction.
        path: (k + 1, B) integer timesteps [t, t', ..., t''] per sample; -1 is the end. k = 2 is
            the paper's two-step teacher; direct distillation with teacher/student = k uses k steps.
    Returns: x_target (B, C, H, W), detached.
    """
    with torch.no_grad():
        a_t, s_t = (v.to(z_t.dtype) for v in alpha_sigma(cumprod, path[0]))
        z = z_t
        x_hat = z_t
        for j in range(path.shape[0] - 1):
            a, s = (v.to(z_t.dtype) for v in alpha_sigma(cumprod, path[j]))
            a_next, s_next = (v.to(z_t.dtype) for v in alpha_sigma(cumprod, path[j + 1]))
            x_hat, eps_hat = estimates(predict(z, path[j]), z, a, s, prediction_type)
            z = ddim_from_estimates(x_hat, eps_hat, a_next, s_next)
        return x_target_from_teacher(z_t, z, x_hat, a_t, s_t, a_next, s_next)


def truncated_snr_weight(alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """max(alpha_t^2 / sigma_t^2, 1) per sample (B,)."""
    return torch.clamp(alpha**2 / sigma**2, min=SNR_TRUNCATION)


def weighted_mse(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """mean_b weight_b * mean_{c,h,w} (prediction - target)^2, a scalar."""
    per = ((prediction.float() - target.float()) ** 2).flatten(1).mean(dim=1)
    if weight is not None:
        per = per * weight.to(per.dtype)
    return per.mean()


def distillation_loss(student_x_hat: torch.Tensor, x_target: torch.Tensor, alpha_t: torch.Tensor,
                      sigma_t: torch.Tensor) -> torch.Tensor:
    """L_dstl = max(alpha_t^2/sigma_t^2, 1) * ||x_hat_student - x_target||^2 (batch mean).

    Vanilla, CFG-aware and mixed distillation share this loss; they differ only in the guidance
    scale used for the teacher's and the student's predictions (see `distillation_scales`).
    """
    return weighted_mse(student_x_hat, x_target.detach(), truncated_snr_weight(alpha_t, sigma_t))


def distillation_scales(batch: int, cfg_probability: float, low: float, high: float,
                        generator: torch.Generator) -> torch.Tensor:
    """Per-sample guidance scales for mixed distillation (B,).

    Each sample is CFG-aware with probability p (w ~ U[low, high]) and vanilla otherwise. Vanilla
    uses w = 1, for which v_tilde = 1 * v(c) - 0 * v(null) = v(c): the vanilla loss exactly, so
    the three losses of the paper are one code path (p = 0: vanilla, p = 1: CFG-aware).
    """
    use_cfg = torch.rand(batch, generator=generator) < cfg_probability
    w = sample_guidance(batch, low, high, generator)
    return torch.where(use_cfg, w, torch.ones_like(w))


def original_loss(prediction: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor,
                  sigma: torch.Tensor, prediction_type: str) -> torch.Tensor:
    """L_ori = ||v_hat(t, z_t, c) - v||^2 (or ||eps_hat - eps||^2 for an epsilon model)."""
    return weighted_mse(prediction, prediction_target(x, eps, alpha, sigma, prediction_type).detach())


@dataclass(frozen=True)
class CombinedLoss:
    total: torch.Tensor  # the scalar to back-propagate
    distill: torch.Tensor  # L_dstl
    original: torch.Tensor  # L_ori (unscaled)
    gamma_effective: float  # the gamma actually applied this step


def combine_losses(distill: torch.Tensor, original: torch.Tensor, gamma: float, eps: float = 1e-12) -> CombinedLoss:
    """L = L_dstl + gamma_eff * L_ori with dynamic rescaling.

    The paper keeps L_ori "at L_dstl's scale" without a formula. Our rule:
        gamma_eff = gamma * L_dstl.detach() / L_ori.detach(),
    so the L_ori term always contributes gamma * L_dstl to the loss value (a fixed 1 : gamma
    ratio) while its gradient keeps the direction of grad L_ori. The ratio is detached: rescaling
    never back-propagates. gamma = 0 turns L_ori off.
    """
    if gamma == 0.0:
        return CombinedLoss(distill, distill.detach(), original.detach(), 0.0)
    gamma_eff = gamma * float(distill.detach()) / max(float(original.detach()), eps)
    return CombinedLoss(distill + gamma_eff * original, distill.detach(), original.detach(), gamma_eff)
