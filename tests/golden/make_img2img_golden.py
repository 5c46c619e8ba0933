"""Write tests/golden/img2img.json: image-to-image with every sampler of docs/contracts.md section 3, run by diffusers.

Run from the repository root:  python tests/golden/make_img2img_golden.py

Each case runs what pipelines/stable_diffusion/pipeline_stable_diffusion_img2img.py runs after the VAE encoder,
on fixed posterior moments instead of an encoded image and the fake UNet of tests/golden/make_golden.py:

    scheduler.set_timesteps(steps)
    timesteps, _ = StableDiffusionImg2ImgPipeline.get_timesteps(pipe, steps, strength, "cpu")  # set_begin_index too
    g = torch.Generator("cpu").manual_seed(seed)
    x0 = DiagonalGaussianDistribution(moments).sample(g) * scaling_factor                       # draw 1
    latents = scheduler.add_noise(x0, randn_tensor(x0.shape, generator=g), timesteps[:1])        # draw 2
    for t in timesteps:                                                                          # draws 3...
        latents = scheduler.step(fake(scheduler.scale_model_input(latents, t), float(t), c), t, latents,
                                 generator=g, **kwargs).prev_sample

The file holds the moments (1, 8, 8, 8) once (mean channels 0-3, log-variance 4-7, two log-variances beyond
diffusers' clamp to [-30, 20]), every value of the first case's sampled x0 and, per case, the sampler record of
tests/golden/make_sampler_golden.py (`record`), the begin index (`t_start`), and every LATENT_STRIDE-th value of x0,
of the noised start latents and of the latents after each call. ios_app/Tests/SnapFusionKitTests/
ImageToImageGoldenTests.swift checks the Swift samplers and pipeline against it. Deterministic (CPU, one thread);
"generated_by" records the line that made it.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
    StableDiffusionImg2ImgPipeline,
    TCDScheduler,
)
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from diffusers.utils.torch_utils import randn_tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_golden import GOLDEN, ROOT, fake_model, float32_list, write  # noqa: E402
from make_sampler_golden import (  # noqa: E402
    CONDITION,
    LATENT_SHAPE,
    LATENT_STRIDE,
    LCM,
    NAMES,
    SD15,
    TURBO,
    UNCONDITION,
    record,
    saved_config,
)

SCALING_FACTOR = 0.18215  # Stable Diffusion 1.x/2.x VAE scaling_factor
MOMENTS_SEED = 1234
# Flat indices of log-variances set beyond the clamp: channel 4 (low, -35 -> -30) and channel 5 (high, 21 -> 20;
# std e^10), both off the LATENT_STRIDE grid so the trajectories stay in the usual range.
CLAMPED = {(4, 0, 1): -35.0, (5, 0, 1): 21.0}

# (case name, scheduler class, config, steps, strength, prediction_type, guidance_scale, seed, step kwargs)
CASES: list[tuple[str, type, dict[str, Any], int, float, str, float, int, dict[str, Any]]] = [
    ("ddim_strength_0.5", DDIMScheduler, SD15, 8, 0.5, "epsilon", 1.0, 40, {"eta": 0.0}),
    ("ddim_strength_1_v_cfg", DDIMScheduler, SD15, 4, 1.0, "v_prediction", 7.5, 41, {"eta": 0.0}),
    ("pndm_strength_0.6", PNDMScheduler, SD15, 10, 0.6, "epsilon", 1.0, 42, {}),
    ("pndm_v_strength_0.75", PNDMScheduler, SD15, 4, 0.75, "v_prediction", 1.0, 43, {}),
    ("dpmsolver++_strength_0.7", DPMSolverMultistepScheduler, SD15, 10, 0.7, "epsilon", 1.0, 44, {}),
    ("dpmsolver++_karras_v_strength_0.5", DPMSolverMultistepScheduler, {**SD15, "use_karras_sigmas": True}, 8, 0.5,
     "v_prediction", 4.0, 45, {}),
    ("euler_turbo_strength_0.5", EulerDiscreteScheduler, TURBO, 4, 0.5, "epsilon", 1.0, 46, {}),
    ("euler_ancestral_turbo_strength_0.75", EulerAncestralDiscreteScheduler, TURBO, 4, 0.75, "epsilon", 1.0, 47, {}),
    ("lcm_strength_0.5", LCMScheduler, LCM, 4, 0.5, "epsilon", 1.0, 48, {}),
    ("tcd_eta_0.3_strength_0.67", TCDScheduler, LCM, 6, 0.67, "epsilon", 1.0, 49, {"eta": 0.3}),
]


def moments() -> torch.Tensor:
    """The posterior moments (1, 2C, h, w) the fake encoder returns: mean ~ 0.8 N(0, 1), log-variance ~ 1.5 N(0, 1) - 2."""
    generator = torch.Generator("cpu").manual_seed(MOMENTS_SEED)
    c, h, w = LATENT_SHAPE[1:]
    mean = torch.randn((1, c, h, w), generator=generator, dtype=torch.float32) * 0.8
    logvar = torch.randn((1, c, h, w), generator=generator, dtype=torch.float32) * 1.5 - 2.0
    out = torch.cat([mean, logvar], dim=1)
    for (channel, y, x), value in CLAMPED.items():
        out[0, channel, y, x] = value
    return out


def run_case(name: str, cls: type, base: dict[str, Any], steps: int, strength: float, prediction_type: str,
             scale: float, seed: int, kwargs: dict[str, Any], parameters: torch.Tensor) -> dict[str, Any]:
    scheduler = cls.from_config({**base, "prediction_type": prediction_type})
    scheduler.set_timesteps(steps)
    sampler = NAMES[cls]
    entry = record(scheduler, sampler, steps, float(kwargs.get("eta", 0.0)))
    # diffusers' own get_timesteps (it also calls set_begin_index where the scheduler has one)
    timesteps, _ = StableDiffusionImg2ImgPipeline.get_timesteps(SimpleNamespace(scheduler=scheduler), steps, strength, "cpu")
    t_start = len(scheduler.timesteps) - len(timesteps)
    generator = torch.Generator("cpu").manual_seed(seed)
    x0 = DiagonalGaussianDistribution(parameters).sample(generator) * SCALING_FACTOR
    noise = randn_tensor(x0.shape, generator=generator, dtype=torch.float32)
    latents = scheduler.add_noise(x0, noise, timesteps[:1])
    start = latents
    trajectory = []
    guided = scale > 1
    step_kwargs = dict(kwargs)
    if "generator" in inspect.signature(scheduler.step).parameters:
        step_kwargs["generator"] = generator
    for t in timesteps:
        x = scheduler.scale_model_input(latents, t).numpy()
        cond = torch.from_numpy(fake_model(x, float(t), CONDITION))
        out = cond
        if guided:
            uncond = torch.from_numpy(fake_model(x, float(t), UNCONDITION))
            out = uncond + scale * (cond - uncond)  # pipeline_stable_diffusion_img2img.py, float32
        latents = scheduler.step(out, t, latents, **step_kwargs).prev_sample
        trajectory.append(float32_list(latents)[::LATENT_STRIDE])
    return {
        "name": name, "scheduler_class": cls.__name__, "config": saved_config(scheduler), "steps": steps,
        "strength": strength, "t_start": t_start, "prediction_type": prediction_type, "guidance_scale": scale,
        "seed": seed, "step_kwargs": kwargs, "condition": CONDITION, "uncondition": UNCONDITION,
        "shape": list(LATENT_SHAPE), "latent_stride": LATENT_STRIDE, "record": entry,
        "image_latents": float32_list(x0)[::LATENT_STRIDE], "start_latents": float32_list(start)[::LATENT_STRIDE],
        "latents": trajectory, "x0_full": float32_list(x0),
    }


def write_img2img(out: Path = GOLDEN) -> Path:
    """Write img2img.json into `out`; returns its path."""
    torch.set_num_threads(1)
    parameters = moments()
    cases = [run_case(*case, parameters) for case in CASES]
    first_x0 = cases[0]["x0_full"]
    for case in cases:
        del case["x0_full"]
    write(
        "img2img.json",
        "tests/golden/make_img2img_golden.py: Scheduler.from_config(config); set_timesteps(steps); "
        "timesteps = StableDiffusionImg2ImgPipeline.get_timesteps(pipe, steps, strength); "
        "g = torch.Generator('cpu').manual_seed(seed); x0 = DiagonalGaussianDistribution(moments).sample(g) * scaling_factor; "
        "latents = scheduler.add_noise(x0, randn_tensor(x0.shape, generator=g), timesteps[:1]); per t: "
        "scheduler.step(fake(scheduler.scale_model_input(latents, t), float(t), c), t, latents, generator=g, "
        "**step_kwargs).prev_sample, latents[::latent_stride] after each",
        {"fake_model": "float32((0.3 + 0.4 * t / 1000) * z + 0.05 * c / (1 + z * z)) in float64; "
                       "guided = uncond + w * (cond - uncond) in float32",
         "scaling_factor": SCALING_FACTOR, "moments_shape": [1, 2 * LATENT_SHAPE[1], *LATENT_SHAPE[2:]],
         "moments": float32_list(parameters), "first_case_image_latents": first_x0, "cases": cases}, out,
    )
    return out / "img2img.json"


def main() -> None:
    path = write_img2img()
    print(f"{path.relative_to(ROOT)}: {len(CASES)} cases, {path.stat().st_size / 1024:.1f} KB")


if __name__ == "__main__":
    main()
