"""Every sampler against the diffusers scheduler it names: the planned lists (timesteps, sigmas,
init_noise_sigma) equal the scheduler's state after set_timesteps, and a whole trajectory of a
fixed model equals diffusers' scale_model_input + step with the same generator."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from snapfusion_coreml.config import SchedulerConfig
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.samplers.plan import plan
from snapfusion_coreml.samplers.run import run_sampler
from snapfusion_coreml.samplers.settings import SamplerSettings
from tests.samplers.cases import CASES, diffusers_scheduler

PARAMS = [pytest.param(c, p, id=f"{c[0]}-{p}") for c in CASES for p in c[4]]


def fake_model(z: torch.Tensor, t: float) -> torch.Tensor:
    """A smooth stand-in for a UNet, nonlinear in z and dependent on t."""
    z = z.double()
    return ((0.3 + 0.4 * float(t) / 1000) * z + 0.035 / (1 + z * z)).float()


def settings_of(scheduler) -> SamplerSettings:
    config = {**scheduler.config, "_class_name": type(scheduler).__name__}
    return SamplerSettings.from_scheduler_config(config, "test")


@pytest.mark.parametrize("case, prediction_type", PARAMS)
def test_plan_equals_diffusers_set_timesteps(case, prediction_type):
    _, class_name, extra, steps, _ = case
    scheduler = diffusers_scheduler(class_name, extra, prediction_type)
    record = plan(settings_of(scheduler), SchedulerConfig(prediction_type=prediction_type), steps)
    scheduler.set_timesteps(steps)
    assert record.timesteps == tuple(scheduler.timesteps.double().tolist())
    if record.sigmas is not None:
        assert record.sigmas == tuple(scheduler.sigmas.double().tolist())
    assert record.init_noise_sigma == float(scheduler.init_noise_sigma)
    assert record.final_alpha_cumprod == float(getattr(scheduler, "final_alpha_cumprod", record.final_alpha_cumprod))


@pytest.mark.parametrize("case, prediction_type", PARAMS)
def test_trajectory_equals_diffusers_step(case, prediction_type):
    _, class_name, extra, steps, _ = case
    scheduler = diffusers_scheduler(class_name, extra, prediction_type)
    settings = settings_of(scheduler)
    scheduler.set_timesteps(steps)
    generator = torch.Generator("cpu").manual_seed(11)
    z = torch.randn((1, 4, 8, 8), generator=generator) * scheduler.init_noise_sigma
    kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    if class_name == "TCDScheduler":
        kwargs["eta"] = settings.eta  # ours defaults to the TCD authors' 0.3
    expected = []
    for t in scheduler.timesteps:
        z = scheduler.step(fake_model(scheduler.scale_model_input(z, t), t), t, z, return_dict=False, **kwargs)[0]
        expected.append(z)

    got = []
    record = plan(settings, SchedulerConfig(prediction_type=prediction_type), steps)
    run_sampler(record, SchedulerConfig(prediction_type=prediction_type), fake_model, (1, 4, 8, 8),
                torch.Generator("cpu").manual_seed(11), lambda i, t, z: got.append(z))
    assert len(got) == len(expected)
    for ours, theirs in zip(got, expected):  # diffusers steps in float32, ours in float64
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=2e-5)


def test_record_round_trips_through_pipeline_json_form():
    from snapfusion_coreml.json_fields import JsonFields
    from snapfusion_coreml.samplers.record import SamplerRecord

    for case in CASES:
        scheduler = diffusers_scheduler(case[1], case[2], "epsilon")
        record = plan(settings_of(scheduler), SchedulerConfig(), case[3])
        again = SamplerRecord.from_fields(JsonFields(record.to_dict(), "sampler", "pipeline.json"), 2)
        assert again == record, case[0]


@pytest.mark.parametrize("config, message", [
    ({"_class_name": "KDPM2DiscreteScheduler"}, "unsupported scheduler 'KDPM2DiscreteScheduler'"),
    ({"_class_name": "DDIMScheduler", "thresholding": True}, "thresholding=True"),
    ({"_class_name": "DDIMScheduler", "rescale_betas_zero_snr": True}, "rescale_betas_zero_snr=True"),
    ({"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "sde-dpmsolver++"}, "algorithm_type='sde-dpmsolver++'"),
    ({"_class_name": "DPMSolverMultistepScheduler", "solver_order": 3}, "solver_order=3"),
    ({"_class_name": "PNDMScheduler", "skip_prk_steps": False}, "skip_prk_steps=False"),
    ({"_class_name": "EulerDiscreteScheduler", "timestep_type": "continuous"}, "timestep_type='continuous'"),
])
def test_unsupported_scheduler_is_refused_by_name(config, message):
    with pytest.raises(UserError, match="^unsupported scheduler") as info:
        SamplerSettings.from_scheduler_config(config, "m/scheduler/scheduler_config.json")
    assert message in str(info.value) and "(in m/scheduler/scheduler_config.json)" in str(info.value)


def test_override_keeps_the_models_spacing_and_takes_the_class_defaults():
    sd15 = {"_class_name": "PNDMScheduler", "steps_offset": 1, "set_alpha_to_one": False, "skip_prk_steps": True,
            "timestep_spacing": "leading"}
    euler_a = SamplerSettings.from_scheduler_config(sd15, "sd15", override="euler_ancestral")
    assert (euler_a.name, euler_a.timestep_spacing, euler_a.steps_offset) == ("euler_ancestral", "leading", 1)
    tcd = SamplerSettings.from_scheduler_config(sd15, "sd15", override="tcd")
    assert tcd.eta == 0.3 and tcd.with_eta(0.0).eta == 0.0
    with pytest.raises(UserError, match="expected --eta in"):
        tcd.with_eta(1.5)
    with pytest.raises(UserError, match="expected --eta only with the tcd sampler"):
        euler_a.with_eta(0.3)
    with pytest.raises(UserError, match="expected --sampler one of"):
        SamplerSettings.from_scheduler_config(sd15, "sd15", override="heun")


def test_consistency_samplers_refuse_more_steps_than_their_grid():
    settings = SamplerSettings.from_scheduler_config({"_class_name": "LCMScheduler"}, "lcm")
    with pytest.raises(UserError, match="expected at most 50 steps for lcm"):
        plan(settings, SchedulerConfig(), 51)


def test_this_projects_folders_keep_trailing_ddim():
    """A folder without `_class_name` (the training recipe's) samples with trailing DDIM, the
    record the previous format described: 999, 874, ..., 124 and the end at alpha 1."""
    record = plan(SamplerSettings.from_scheduler_config(SchedulerConfig(timestep_spacing="trailing").to_dict(), "own"),
                  SchedulerConfig(prediction_type="v_prediction"), 8)
    assert record.timesteps == (999, 874, 749, 624, 499, 374, 249, 124)
    assert record.previous_timesteps == (874, 749, 624, 499, 374, 249, 124, -1)
    assert record.final_alpha_cumprod == 1.0 and record.settings.clip_sample is None


def test_plan_writes_the_golden_records_swift_is_tested_on():
    """tests/golden/samplers.json holds, per case, the record built from diffusers' scheduler object
    (make_sampler_golden.py) and diffusers' trajectory that the Swift samplers reproduce: the record
    `convert` writes for that scheduler config must be the same record."""
    import json
    from pathlib import Path

    golden = json.loads((Path(__file__).parents[1] / "golden" / "samplers.json").read_text())
    for case in golden["cases"]:
        # the golden file spells diffusers' -Infinity (lambda_min_clipped) as a string
        config = {**{k: float(v) if v in ("inf", "-inf") else v for k, v in case["config"].items()},
                  "_class_name": case["scheduler_class"]}
        settings = SamplerSettings.from_scheduler_config(config, case["name"]).with_eta(case["step_kwargs"].get("eta"))
        record = plan(settings, SchedulerConfig(prediction_type=case["prediction_type"]), case["steps"]).to_dict()
        expected = case["record"]
        assert set(record) == set(expected), case["name"]
        for key, value in expected.items():
            assert record[key] == pytest.approx(value, rel=1e-7) if isinstance(value, (list, float)) else record[key] == value, \
                (case["name"], key, record[key], value)
