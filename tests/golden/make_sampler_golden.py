"""Write tests/golden/samplers.json: every sampler of docs/contracts.md section 3, run by diffusers.

Run from the repository root:  python tests/golden/make_sampler_golden.py

For each case the file holds the diffusers scheduler config (as `scheduler.config` saves it), the
pipeline.json sampler record built from the scheduler after `set_timesteps`, and the latents of a
whole generation (every LATENT_STRIDE-th value of each step) run the way pipelines/stable_diffusion/pipeline_stable_diffusion.py runs it:

    g = torch.Generator("cpu").manual_seed(seed)
    latents = randn_tensor((1, 4, 8, 8), generator=g) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x = scheduler.scale_model_input(latents, t)
        out = fake(x, t, c_cond)                                     # guidance: uncond + w (cond - uncond)
        latents = scheduler.step(out, t, latents, generator=g, **kwargs).prev_sample

with the fake UNet of tests/golden/make_golden.py (its docstring), evaluated at the float value of
`t`; the generator goes to the schedulers whose `step` takes one (prepare_extra_step_kwargs). Every
random draw of a scheduler comes from the same generator, after the initial latents, so the Swift
samplers must continue that stream. Also written: diffusers' guidance-scale embedding
(`LatentConsistencyModelPipeline.get_guidance_scale_embedding(torch.tensor([w - 1]), dim)`).

The output is deterministic (CPU, one thread) and records the line that made it under "generated_by".
"""

from __future__ import annotations

import inspect
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
    TCDScheduler,
)
from diffusers.pipelines.latent_consistency_models.pipeline_latent_consistency_text2img import (
    LatentConsistencyModelPipeline,
)
from diffusers.utils.torch_utils import randn_tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import GOLDEN, ROOT, fake_model, float32_list, write  # noqa: E402

LATENT_SHAPE = (1, 4, 8, 8)
# Every sampler is elementwise apart from the shape of its noise draws, so every LATENT_STRIDE-th
# value of each step's latents (12 of 256, every channel, row and column) checks the arithmetic and
# the random stream while keeping the file small (tests/golden/test_golden_current.py's budget).
LATENT_STRIDE = 23
CONDITION = 0.5  # the fake text encoder on "a photo of an astronaut" (5 tokens / 10)
UNCONDITION = 0.0  # the empty negative prompt

# Stable Diffusion 1.5's scheduler_config.json (PNDMScheduler); the other samplers of SD-1.x/2.x
# models are built from it with from_config, as users swap schedulers in diffusers.
SD15 = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
        "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "clip_sample": False,
        "timestep_spacing": "leading", "trained_betas": None}
# SD-Turbo's scheduler_config.json (EulerDiscreteScheduler, trailing).
TURBO = {**SD15, "timestep_spacing": "trailing", "interpolation_type": "linear", "use_karras_sigmas": False}
# LCM-distilled SD-1.5 (e.g. LCM Dreamshaper v7) and TCD: their schedulers' defaults on the SD-1.5 schedule.
LCM = {**{k: v for k, v in SD15.items() if k != "skip_prk_steps"}, "set_alpha_to_one": True,
       "original_inference_steps": 50, "timestep_scaling": 10.0}

NAMES = {DDIMScheduler: "ddim", PNDMScheduler: "pndm", DPMSolverMultistepScheduler: "dpmsolver++",
         EulerDiscreteScheduler: "euler", EulerAncestralDiscreteScheduler: "euler_ancestral",
         LCMScheduler: "lcm", TCDScheduler: "tcd"}

# (case name, scheduler class, config, steps, prediction_type, guidance_scale, seed, step kwargs)
CASES: list[tuple[str, type, dict[str, Any], int, str, float, int, dict[str, Any]]] = [
    ("ddim_leading_epsilon_cfg", DDIMScheduler, SD15, 8, "epsilon", 7.5, 0, {"eta": 0.0}),
    ("ddim_leading_v", DDIMScheduler, SD15, 5, "v_prediction", 1.0, 1, {"eta": 0.0}),
    ("ddim_clip_epsilon_cfg", DDIMScheduler, {**SD15, "clip_sample": True, "clip_sample_range": 1.5}, 6, "epsilon",
     7.5, 24, {"eta": 0.0}),
    ("ddim_trailing_v", DDIMScheduler, {**SD15, "timestep_spacing": "trailing", "steps_offset": 0}, 3,
     "v_prediction", 1.0, 2, {"eta": 0.0}),
    ("pndm_epsilon_cfg", PNDMScheduler, SD15, 10, "epsilon", 7.5, 3, {}),
    ("pndm_v", PNDMScheduler, SD15, 4, "v_prediction", 1.0, 4, {}),
    ("pndm_one_step", PNDMScheduler, SD15, 1, "epsilon", 1.0, 5, {}),
    ("dpmsolver++_2m_epsilon_cfg", DPMSolverMultistepScheduler, SD15, 20, "epsilon", 7.5, 6, {}),
    ("dpmsolver++_2m_v", DPMSolverMultistepScheduler, SD15, 5, "v_prediction", 1.0, 7, {}),
    ("dpmsolver++_2m_karras_epsilon", DPMSolverMultistepScheduler, {**SD15, "use_karras_sigmas": True}, 12,
     "epsilon", 1.0, 8, {}),
    ("dpmsolver++_2m_karras_v_cfg", DPMSolverMultistepScheduler, {**SD15, "use_karras_sigmas": True}, 8,
     "v_prediction", 4.0, 9, {}),
    ("euler_turbo_1_step", EulerDiscreteScheduler, TURBO, 1, "epsilon", 1.0, 10, {}),
    ("euler_turbo_4_steps", EulerDiscreteScheduler, TURBO, 4, "epsilon", 1.0, 11, {}),
    ("euler_leading_epsilon_cfg", EulerDiscreteScheduler, SD15, 10, "epsilon", 7.5, 12, {}),
    ("euler_trailing_v", EulerDiscreteScheduler, TURBO, 4, "v_prediction", 1.0, 13, {}),
    ("euler_ancestral_1_step", EulerAncestralDiscreteScheduler, TURBO, 1, "epsilon", 1.0, 14, {}),
    ("euler_ancestral_2_steps", EulerAncestralDiscreteScheduler, TURBO, 2, "epsilon", 1.0, 15, {}),
    ("euler_ancestral_4_steps", EulerAncestralDiscreteScheduler, TURBO, 4, "epsilon", 1.0, 16, {}),
    ("euler_ancestral_v_cfg", EulerAncestralDiscreteScheduler, TURBO, 4, "v_prediction", 3.0, 17, {}),
    ("lcm_4_steps", LCMScheduler, LCM, 4, "epsilon", 1.0, 18, {}),
    ("lcm_8_steps", LCMScheduler, LCM, 8, "epsilon", 1.0, 19, {}),
    ("lcm_v_4_steps", LCMScheduler, LCM, 4, "v_prediction", 1.0, 20, {}),
    ("lcm_clip_4_steps", LCMScheduler, {**LCM, "clip_sample": True}, 4, "epsilon", 1.0, 25, {}),
    ("tcd_eta_0.3", TCDScheduler, LCM, 4, "epsilon", 1.0, 21, {"eta": 0.3}),
    ("tcd_eta_0", TCDScheduler, LCM, 4, "epsilon", 1.0, 22, {"eta": 0.0}),
    ("tcd_v_eta_0.3", TCDScheduler, LCM, 6, "v_prediction", 1.0, 23, {"eta": 0.3}),
]

EMBEDDING_SCALES = (1.0, 1.5, 8.5)
EMBEDDING_DIMS = (256, 7)


def saved_config(scheduler: Any) -> dict[str, Any]:
    """The scheduler's config as save_config writes it, with non-finite floats (DPMSolverMultistepScheduler's
    lambda_min_clipped is -inf, which diffusers writes as the non-JSON token -Infinity) as the strings "inf"/"-inf"."""
    config = json.loads(scheduler.to_json_string())
    return {k: str(v) if isinstance(v, float) and not math.isfinite(v) else v for k, v in config.items()}


def alphas_cumprod64(config: Any) -> np.ndarray:
    """alphas_cumprod in float64 as docs/contracts.md section 3 defines it."""
    n, b0, b1 = config.num_train_timesteps, config.beta_start, config.beta_end
    if config.beta_schedule == "scaled_linear":
        betas = np.linspace(b0**0.5, b1**0.5, n, dtype=np.float64) ** 2
    else:
        betas = np.linspace(b0, b1, n, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def record(scheduler: Any, name: str, steps: int, eta: float) -> dict[str, Any]:
    """The pipeline.json sampler record of docs/contracts.md section 3 for `scheduler` after set_timesteps."""
    config = scheduler.config
    n = config.num_train_timesteps
    timesteps = [float(t) for t in scheduler.timesteps.to(torch.float32)]
    ints = [int(t) for t in scheduler.timesteps]
    sigma_sampler = name in ("dpmsolver++", "euler", "euler_ancestral")
    previous = current = None
    if name == "ddim":
        previous = [max(t - n // steps, -1) for t in ints]
    elif name == "pndm":
        # step_plms: call 1 repeats call 0's step (from t + n // steps to t); the others go t -> t - n // steps.
        current = [t + n // steps if i == 1 else t for i, t in enumerate(ints)]
        previous = [max(t if i == 1 else t - n // steps, -1) for i, t in enumerate(ints)]
    elif name == "lcm":
        previous = ints[1:] + [-1]
    elif name == "tcd":
        previous = ints[1:] + [0]
    final_alpha = None
    if not sigma_sampler:
        final_alpha = 1.0 if config.set_alpha_to_one else float(alphas_cumprod64(config)[0])
    dpm = name == "dpmsolver++"
    return {
        "name": name,
        "scheduler_class": type(scheduler).__name__,
        "default_steps": steps,
        "timestep_spacing": config.get("timestep_spacing"),
        "steps_offset": config.get("steps_offset"),
        "timesteps": timesteps,
        "previous_timesteps": previous,
        "current_timesteps": current,
        "sigmas": float32_list(scheduler.sigmas) if sigma_sampler else None,
        "init_noise_sigma": float(np.float32(scheduler.init_noise_sigma)),
        "scale_model_input": name in ("euler", "euler_ancestral"),
        "final_alpha_cumprod": final_alpha,
        "eta": eta if name in ("ddim", "tcd") else None,
        "clip_sample": float(config.clip_sample_range) if name in ("ddim", "lcm") and config.clip_sample else None,
        "use_karras_sigmas": config.use_karras_sigmas if name in ("dpmsolver++", "euler") else None,
        "solver_order": config.solver_order if dpm else None,
        "solver_type": config.solver_type if dpm else None,
        "lower_order_final": config.lower_order_final if dpm else None,
        "euler_at_final": config.euler_at_final if dpm else None,
        "final_sigmas_type": config.final_sigmas_type if name in ("dpmsolver++", "euler") else None,
        "original_inference_steps": config.original_inference_steps if name in ("lcm", "tcd") else None,
        "timestep_scaling": config.timestep_scaling if name == "lcm" else None,
    }


def run_case(name: str, cls: type, base: dict[str, Any], steps: int, prediction_type: str, scale: float,
             seed: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    scheduler = cls.from_config({**base, "prediction_type": prediction_type})
    scheduler.set_timesteps(steps)
    sampler = NAMES[cls]
    entry = record(scheduler, sampler, steps, float(kwargs.get("eta", 0.0)))
    generator = torch.Generator("cpu").manual_seed(seed)
    latents = randn_tensor(LATENT_SHAPE, generator=generator, dtype=torch.float32) * scheduler.init_noise_sigma
    trajectory = [float32_list(latents)[::LATENT_STRIDE]]
    guided = scale > 1
    # prepare_extra_step_kwargs of pipeline_stable_diffusion.py: the generator goes to schedulers that take it.
    step_kwargs = dict(kwargs)
    if "generator" in inspect.signature(scheduler.step).parameters:
        step_kwargs["generator"] = generator
    for t in scheduler.timesteps:
        x = scheduler.scale_model_input(latents, t).numpy()
        cond = torch.from_numpy(fake_model(x, float(t), CONDITION))
        out = cond
        if guided:
            uncond = torch.from_numpy(fake_model(x, float(t), UNCONDITION))
            out = uncond + scale * (cond - uncond)  # pipeline_stable_diffusion.py, float32
        latents = scheduler.step(out, t, latents, **step_kwargs).prev_sample
        trajectory.append(float32_list(latents)[::LATENT_STRIDE])
    return {
        "name": name, "scheduler_class": cls.__name__, "config": saved_config(scheduler),
        "steps": steps, "prediction_type": prediction_type, "guidance_scale": scale, "seed": seed,
        "step_kwargs": kwargs, "condition": CONDITION, "uncondition": UNCONDITION, "shape": list(LATENT_SHAPE),
        "latent_stride": LATENT_STRIDE, "record": entry, "latents": trajectory,
    }


def embedding_cases() -> list[dict[str, Any]]:
    cases = []
    for w in EMBEDDING_SCALES:
        for dim in EMBEDDING_DIMS:
            # As LatentConsistencyModelPipeline.__call__ builds it: torch.tensor(guidance_scale - 1).
            emb = LatentConsistencyModelPipeline.get_guidance_scale_embedding(
                None, torch.tensor([w - 1]), embedding_dim=dim, dtype=torch.float32)
            cases.append({"guidance_scale": w, "dim": dim, "values": float32_list(emb)})
    return cases


def write_samplers(out: Path = GOLDEN) -> Path:
    """Write samplers.json into `out`; returns its path."""
    torch.set_num_threads(1)
    cases = [run_case(*case) for case in CASES]
    write(
        "samplers.json",
        "tests/golden/make_sampler_golden.py: Scheduler.from_config(config); set_timesteps(steps); "
        "latents = randn_tensor((1, 4, 8, 8), generator=torch.Generator('cpu').manual_seed(seed)) * init_noise_sigma; "
        "per t: scheduler.step(fake(scheduler.scale_model_input(latents, t), float(t), c), t, latents, "
        "generator=g, **step_kwargs).prev_sample, latents[::latent_stride] after each; embeddings: "
        "LatentConsistencyModelPipeline.get_guidance_scale_embedding(None, torch.tensor([w - 1]), dim)",
        {"fake_model": "float32((0.3 + 0.4 * t / 1000) * z + 0.05 * c / (1 + z * z)) in float64; "
                       "guided = uncond + w * (cond - uncond) in float32",
         "cases": cases, "guidance_embeddings": embedding_cases()}, out,
    )
    return out / "samplers.json"


def main() -> None:
    path = write_samplers()
    print(f"{path.relative_to(ROOT)}: {len(CASES)} cases, {path.stat().st_size / 1024:.1f} KB")


if __name__ == "__main__":
    main()
