import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from snapfusion_coreml import schedule
from snapfusion_coreml.config import SchedulerConfig
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.schedule import alphas_cumprod, guide, initial_latents, sample, timesteps


def test_trailing_spacing_for_eight_steps():
    assert timesteps(SchedulerConfig(), 8) == [999, 874, 749, 624, 499, 374, 249, 124]
    assert all(len(timesteps(SchedulerConfig(), n)) == n for n in range(1, 1001))
    with pytest.raises(UserError, match="steps"):
        timesteps(SchedulerConfig(), 0)


@pytest.mark.parametrize("spacing", ["trailing", "leading", "linspace"])
def test_spacing_matches_diffusers(spacing):
    ours = timesteps(SchedulerConfig(timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0), 20)
    ref = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, timestep_spacing=spacing,
                        steps_offset=1 if spacing == "leading" else 0)
    ref.set_timesteps(20)
    assert ours == ref.timesteps.tolist()


def test_alphas_cumprod_matches_diffusers():
    ref = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).alphas_cumprod.numpy()
    np.testing.assert_allclose(alphas_cumprod(SchedulerConfig()), ref, rtol=1e-5)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddim_loop_matches_diffusers(prediction_type):
    config = SchedulerConfig(prediction_type=prediction_type)
    ref = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, timestep_spacing="trailing",
                        prediction_type=prediction_type, set_alpha_to_one=True, clip_sample=False)
    # 8 steps: diffusers steps to t - 1000 // 8, which is exactly the next listed timestep
    ref.set_timesteps(8)

    def fake(z, t):
        return torch.tanh(z) * (0.3 + t / 2000)

    z0 = initial_latents(3, (1, 4, 8, 8))
    ours = sample(lambda z, t: fake(z, t), z0, config, 8)
    z = z0.double()
    for t in ref.timesteps:
        z = ref.step(fake(z, int(t)), t, z).prev_sample
    np.testing.assert_allclose(ours.double().numpy(), z.numpy(), atol=2e-4, rtol=1e-4)


def test_guidance_convention():
    cond, uncond = torch.tensor([2.0]), torch.tensor([1.0])
    assert guide(cond, uncond, 1.0).item() == 2.0  # w = 1: no guidance
    assert guide(cond, uncond, 7.5).item() == pytest.approx(7.5 * 2 - 6.5 * 1)


def test_initial_latents_are_torch_randn_on_cpu_generator():
    expected = torch.randn((1, 4, 8, 8), generator=torch.Generator("cpu").manual_seed(42))
    assert torch.equal(initial_latents(42, (1, 4, 8, 8)), expected)


def test_guidance_at_or_below_one_is_the_conditional_prediction():
    """diffusers' rule, shared with the Swift pipeline (tests/golden/sampler.json has a w = 0.5 case)."""
    cond, uncond = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)).chunk(2)
    for w in (0.0, 0.5, 1.0):
        assert not schedule.uses_guidance(w)
        assert torch.equal(schedule.guided_prediction(cond, uncond, w), cond)
    assert schedule.uses_guidance(1.5)
    torch.testing.assert_close(schedule.guided_prediction(cond, uncond, 7.5), uncond + 7.5 * (cond - uncond))
    per_sample = torch.tensor([0.5, 3.0]).view(2, 1, 1, 1)  # training draws w per sample
    both = schedule.guided_prediction(cond.repeat(2, 1, 1, 1), uncond.repeat(2, 1, 1, 1), per_sample)
    assert torch.equal(both[:1], cond)
    torch.testing.assert_close(both[1:], schedule.guide(cond, uncond, 3.0))


def test_cfg_batch_is_one_call_of_uncond_then_cond_combined_per_sample():
    """schedule.cfg_batch: one batch-2B call with [uncond; cond] contexts; float and per-sample
    scales give diffusers' guidance where w > 1 and the conditional prediction elsewhere."""
    calls = []

    def unet(z, t, ctx):
        calls.append((z.shape[0], t.tolist()))
        return z * t.view(-1, 1, 1, 1) + ctx.view(-1, 1, 1, 1)

    z, t = torch.ones(2, 1, 2, 2), torch.tensor([3.0, 5.0])
    uncond, cond = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 2.0])
    guided, conditional = schedule.cfg_batch(unet, z, t, uncond, cond, torch.tensor([1.0, 3.0]))
    assert calls == [(4, [3.0, 5.0, 3.0, 5.0])]
    assert torch.equal(conditional, unet(z, t, cond))
    assert torch.equal(guided[0], conditional[0])  # w = 1: the conditional prediction
    assert torch.equal(guided[1], guide(conditional[1], unet(z, t, uncond)[1], 3.0))
    as_float, _ = schedule.cfg_batch(unet, z, t, uncond, cond, 3.0)
    assert torch.equal(as_float, guide(conditional, unet(z, t, uncond), 3.0))
