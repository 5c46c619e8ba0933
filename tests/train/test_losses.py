"""Each formula against numbers worked out by hand (or step by step in numpy), never the same code."""

import math

import numpy as np
import pytest
import torch

from snapfusion_coreml.config import SchedulerConfig
from snapfusion_coreml.schedule import alphas_cumprod
from snapfusion_coreml.train import losses


def t1(*values):
    return torch.tensor(values, dtype=torch.float64)


def full(value, batch=1):
    return torch.full((batch, 1, 1, 1), float(value), dtype=torch.float64)


def test_v_x_eps_conversions_by_hand():
    # alpha 0.6, sigma 0.8 (0.36 + 0.64 = 1), x = 1, eps = 0.5
    a, s = t1(0.6), t1(0.8)
    x, eps = full(1.0), full(0.5)
    z = losses.diffuse(x, eps, a, s)
    assert z.item() == pytest.approx(0.6 * 1.0 + 0.8 * 0.5)  # 1.0
    v = losses.prediction_target(x, eps, a, s, "v_prediction")
    assert v.item() == pytest.approx(0.6 * 0.5 - 0.8 * 1.0)  # -0.5
    x_hat, eps_hat = losses.estimates(v, z, a, s, "v_prediction")
    assert x_hat.item() == pytest.approx(0.6 * 1.0 - 0.8 * -0.5)  # 1.0
    assert eps_hat.item() == pytest.approx(0.8 * 1.0 + 0.6 * -0.5)  # 0.5
    x_hat, eps_hat = losses.estimates(full(0.5), z, a, s, "epsilon")
    assert x_hat.item() == pytest.approx((1.0 - 0.8 * 0.5) / 0.6)
    assert losses.prediction_target(x, eps, a, s, "epsilon").item() == 0.5


def test_ddim_update_by_hand():
    z = losses.ddim_from_estimates(full(2.0), full(-1.0), t1(0.8), t1(0.6))
    assert z.item() == pytest.approx(0.8 * 2.0 + 0.6 * -1.0)


def test_guidance_uses_diffusers_convention():
    w = t1(3.0, 1.0)
    cond = torch.tensor([2.0, 2.0], dtype=torch.float64).view(2, 1, 1, 1)
    uncond = torch.tensor([1.0, 1.0], dtype=torch.float64).view(2, 1, 1, 1)
    out = losses.guided(cond, uncond, w).flatten()
    assert out[0].item() == pytest.approx(3 * 2.0 - 2 * 1.0)  # w c - (w - 1) u = 4
    assert out[1].item() == pytest.approx(2.0)  # w = 1 is no guidance


def test_x_target_by_hand_and_last_step():
    a_t, s_t, a_e, s_e = t1(0.6, 0.6), t1(0.8, 0.8), t1(0.8, 1.0), t1(0.6, 0.0)
    z_t = torch.tensor([1.0, 1.0], dtype=torch.float64).view(2, 1, 1, 1)
    z_e = torch.tensor([0.5, 0.3], dtype=torch.float64).view(2, 1, 1, 1)
    teacher_x = torch.tensor([9.0, 0.7], dtype=torch.float64).view(2, 1, 1, 1)
    out = losses.x_target_from_teacher(z_t, z_e, teacher_x, a_t, s_t, a_e, s_e).flatten()
    # (0.5 - 0.75 * 1) / (0.8 - 0.75 * 0.6) = -0.25 / 0.35
    assert out[0].item() == pytest.approx(-0.25 / 0.35)
    assert out[1].item() == pytest.approx(0.7)  # last step: the teacher's x_hat
    # the target is the x for which one DDIM step from z_t lands exactly on z_t''
    eps = (1.0 - 0.6 * out[0].item()) / 0.8
    assert 0.8 * out[0].item() + 0.6 * eps == pytest.approx(0.5)


def test_teacher_two_step_target_matches_numpy_walkthrough():
    config = SchedulerConfig()
    cumprod = alphas_cumprod(config)
    # hand walk-through in numpy, v-prediction teacher v = 0.1 z + 0.2
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000) ** 2
    ac = np.cumprod(1 - betas)
    a = lambda t: 1.0 if t < 0 else math.sqrt(ac[t])  # noqa: E731
    s = lambda t: 0.0 if t < 0 else math.sqrt(1 - ac[t])  # noqa: E731

    def walk(z0, path):
        z = z0
        for t, tn in zip(path[:-1], path[1:]):
            v = 0.1 * z + 0.2
            x = a(t) * z - s(t) * v
            e = s(t) * z + a(t) * v
            z = a(tn) * x + s(tn) * e
        t, te = path[0], path[-1]
        if te < 0:
            return x
        r = s(te) / s(t)
        return (z - r * z0) / (a(te) - r * a(t))

    paths = [[999, 874, 749], [249, 124, -1]]
    z_t = torch.tensor([0.7, -1.3], dtype=torch.float32).view(2, 1, 1, 1)
    path = torch.tensor(paths).T  # (3, B)
    out = losses.teacher_x_target(lambda z, t: 0.1 * z + 0.2, z_t, path, cumprod, "v_prediction").flatten()
    assert out[0].item() == pytest.approx(walk(0.7, paths[0]), rel=1e-5)
    assert out[1].item() == pytest.approx(walk(-1.3, paths[1]), rel=1e-5)


def test_truncated_snr_weight():
    w = losses.truncated_snr_weight(t1(0.6, 0.8), t1(0.8, 0.6))
    assert w[0].item() == 1.0  # 0.36 / 0.64 < 1 -> truncated
    assert w[1].item() == pytest.approx(0.64 / 0.36)


def test_distillation_loss_by_hand():
    student = torch.tensor([[1.0, 3.0], [0.0, 0.0]]).view(2, 2, 1, 1)
    target = torch.tensor([[0.0, 1.0], [1.0, 1.0]]).view(2, 2, 1, 1)
    # sample 0: mse (1 + 4) / 2 = 2.5, weight 1 (alpha .6 sigma .8); sample 1: mse 1, weight .64/.36
    loss = losses.distillation_loss(student, target, t1(0.6, 0.8), t1(0.8, 0.6))
    assert loss.item() == pytest.approx((2.5 * 1.0 + 1.0 * 0.64 / 0.36) / 2)


def test_mixed_distillation_scales():
    g = torch.Generator().manual_seed(0)
    vanilla = losses.distillation_scales(1000, 0.0, 2.0, 14.0, g)
    assert torch.all(vanilla == 1.0)
    cfg = losses.distillation_scales(1000, 1.0, 2.0, 14.0, g)
    assert cfg.min() >= 2.0 and cfg.max() <= 14.0 and cfg.std() > 3.0  # U[2, 14] has std 3.46
    mixed = losses.distillation_scales(20000, 0.1, 2.0, 14.0, g)
    assert (mixed != 1.0).float().mean().item() == pytest.approx(0.1, abs=0.01)


def test_cfg_aware_student_and_teacher_use_the_same_w():
    # a CFG-aware target with w = 3 and cond/uncond predictions 2 / 1 is the vanilla target of a
    # model predicting 3 * 2 - 2 * 1 = 4
    cond, uncond = full(2.0), full(1.0)
    assert losses.guided(cond, uncond, t1(3.0)).item() == pytest.approx(4.0)


def test_original_loss_and_dynamic_gamma():
    x, eps = full(1.0), full(0.5)
    pred = full(0.5)  # v target is -0.5 -> squared error 1
    ori = losses.original_loss(pred, x, eps, t1(0.6), t1(0.8), "v_prediction")
    assert ori.item() == pytest.approx(1.0)
    distill = torch.tensor(2.0, requires_grad=True)
    original = torch.tensor(8.0, requires_grad=True)
    out = losses.combine_losses(distill, original, gamma=0.2)
    assert out.gamma_effective == pytest.approx(0.2 * 2.0 / 8.0)
    assert out.total.item() == pytest.approx(2.0 + 0.2 * 2.0)  # L_ori term = gamma * L_dstl
    out.total.backward()
    assert original.grad.item() == pytest.approx(0.05)  # the rescale factor is not differentiated
    assert distill.grad.item() == pytest.approx(1.0)
    off = losses.combine_losses(torch.tensor(2.0), torch.tensor(8.0), gamma=0.0)
    assert off.total.item() == 2.0 and off.gamma_effective == 0.0
