"""Scheduler configs as diffusers saves them, the cases the sampler tests run over."""

from __future__ import annotations

SD15 = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}

# (id, diffusers class, config fields beyond SD15, steps, prediction types)
CASES = [
    ("ddim-sd15", "DDIMScheduler", {"steps_offset": 1, "set_alpha_to_one": False, "clip_sample": False}, 20, ("epsilon", "v_prediction")),
    ("ddim-clip", "DDIMScheduler", {"steps_offset": 1}, 7, ("epsilon",)),
    ("ddim-trailing-7", "DDIMScheduler", {"timestep_spacing": "trailing", "clip_sample": False}, 7, ("v_prediction",)),
    ("pndm-sd15", "PNDMScheduler", {"steps_offset": 1, "set_alpha_to_one": False, "skip_prk_steps": True}, 10, ("epsilon", "v_prediction")),
    ("pndm-trailing-1", "PNDMScheduler", {"timestep_spacing": "trailing", "skip_prk_steps": True}, 1, ("epsilon",)),
    ("dpm-2m", "DPMSolverMultistepScheduler", {"steps_offset": 1, "timestep_spacing": "leading"}, 12, ("epsilon", "v_prediction")),
    ("dpm-2m-karras", "DPMSolverMultistepScheduler", {"use_karras_sigmas": True}, 16, ("epsilon",)),
    ("dpm-2m-heun-linspace", "DPMSolverMultistepScheduler", {"solver_type": "heun", "lower_order_final": False}, 20, ("epsilon",)),
    ("euler-leading", "EulerDiscreteScheduler", {"steps_offset": 1, "timestep_spacing": "leading"}, 10, ("epsilon", "v_prediction")),
    ("euler-karras", "EulerDiscreteScheduler", {"use_karras_sigmas": True}, 8, ("epsilon",)),
    ("euler-turbo-1", "EulerDiscreteScheduler", {"timestep_spacing": "trailing"}, 1, ("epsilon",)),
    ("euler-a-turbo-4", "EulerAncestralDiscreteScheduler", {"timestep_spacing": "trailing"}, 4, ("epsilon", "v_prediction")),
    ("euler-a-linspace", "EulerAncestralDiscreteScheduler", {}, 6, ("epsilon",)),
    ("lcm-4", "LCMScheduler", {"set_alpha_to_one": True, "steps_offset": 1}, 4, ("epsilon", "v_prediction")),
    ("lcm-8", "LCMScheduler", {}, 8, ("epsilon",)),
    ("tcd-4", "TCDScheduler", {}, 4, ("epsilon", "v_prediction")),
]


def diffusers_scheduler(class_name: str, extra: dict, prediction_type: str):
    import diffusers

    return getattr(diffusers, class_name)(**SD15, **extra, prediction_type=prediction_type)
