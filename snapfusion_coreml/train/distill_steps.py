"""Step distillation (SnapFusion paper Sec. 4): teacher (model, T steps) -> student (S steps).

One student DDIM step t -> t'' learns what k = T / S teacher steps t -> t' -> ... -> t'' do, in
x-space with the truncated-SNR weight. The teacher and the student use the same guidance scale
w per sample: w = 1 (vanilla) or, with probability p, w ~ U[a, b] (CFG-aware). The total loss is
L_dstl + gamma * L_ori with dynamic gamma (losses.combine_losses).

Schedules:
  - direct: one stage T -> S (k = T / S teacher steps per student step; the paper's 32 -> 16);
  - progressive: T -> T/2 -> ... -> S, each stage halving (k = 2) with the previous stage's
    student as the next teacher; T / S must be a power of two. --max-steps applies per stage.

The student may have another layout than the teacher (e.g. the efficient UNet): it is initialised
from the teacher with map_unet_weights (same-name blocks mapped, new blocks copied from the
nearest same-kind block). The student's timesteps are every k-th teacher timestep of the one
shared spacing function (schedule.timesteps); spacings that do not nest are refused.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import SchedulerConfig, resolve_layout
from ..errors import UserError
from ..pipeline import Pipeline
from ..schedule import alphas_cumprod, cfg_batch, timesteps
from . import losses
from .common import LatentSource, TextConditioner, freeze, load_model, load_vae_encoder, make_stream, noise_batch
from .data import STREAM_GUIDANCE, STREAM_TIMESTEP, draw_for_batch
from .loop import TrainingConfig, TrainResult, make_accelerator, on_main_process, run_training

SCHEDULES = ("direct", "progressive")


@dataclass(frozen=True)
class DistillStepsConfig:
    teacher: str  # MODEL folder of the teacher
    data: Path  # image-text folder, .npy latent folder or prompt-list file
    training: TrainingConfig
    teacher_steps: int = 32
    student_steps: int = 16
    schedule: str = "direct"  # "direct" | "progressive"
    student_layout: str | None = None  # layout preset or JSON; default: the teacher's
    cfg_probability: float = 0.1  # p: share of CFG-aware samples (0: vanilla, 1: CFG-aware)
    guidance_min: float = 2.0  # w ~ U[guidance_min, guidance_max] for CFG-aware samples
    guidance_max: float = 14.0
    gamma: float = 0.2  # weight of L_ori, rescaled dynamically to L_dstl's scale
    caption_dropout: float = 0.1
    vae: Path | None = None  # diffusers VAE folder with an encoder (image data only)
    data_guidance: float = 7.5  # CFG scale when sampling teacher latents from prompts

    def stages(self) -> list[tuple[int, int]]:
        """(teacher steps, student steps) of every stage; raises on impossible step counts."""
        t, s = self.teacher_steps, self.student_steps
        if t < 2 or s < 1:
            raise UserError(f"expected teacher steps >= 2 and student steps >= 1, got {t} and {s}")
        if s >= t or t % s:
            raise UserError(f"expected student steps that divide teacher steps and are fewer, got {s} student and {t} teacher steps")
        if self.schedule not in SCHEDULES:
            raise UserError(f"expected --schedule one of {SCHEDULES}, got {self.schedule!r}")
        if self.schedule == "direct":
            return [(t, s)]
        ratio = t // s
        if ratio & (ratio - 1):
            raise UserError(f"expected a power-of-two teacher/student step ratio for the progressive schedule, got {t}/{s} = {ratio}")
        stages = []
        while t > s:
            stages.append((t, t // 2))
            t //= 2
        return stages

    def validate(self) -> None:
        self.training.validate()
        self.stages()
        if not 0.0 <= self.cfg_probability <= 1.0:
            raise UserError(f"expected a CFG probability in [0, 1], got {self.cfg_probability}")
        if not 1.0 <= self.guidance_min <= self.guidance_max:
            raise UserError(f"expected 1 <= guidance min <= guidance max, got [{self.guidance_min}, {self.guidance_max}]")
        if self.gamma < 0:
            raise UserError(f"expected gamma >= 0, got {self.gamma}")


def student_paths(config: SchedulerConfig, teacher_steps: int, student_steps: int) -> torch.Tensor:
    """(S, k + 1) teacher timestep paths [t, t', ..., t''] for each student step (-1: the end)."""
    teacher_ts, student_ts = timesteps(config, teacher_steps), timesteps(config, student_steps)
    k = teacher_steps // student_steps
    if teacher_ts[::k] != student_ts:
        raise UserError(f"expected the {student_steps} student timesteps to be every {k}th of the {teacher_steps} teacher "
                        f"timesteps, got {student_ts} vs {teacher_ts} with timestep_spacing={config.timestep_spacing!r}; "
                        "use 'trailing' spacing")
    ends = teacher_ts + [-1]
    return torch.tensor([ends[k * i: k * i + k + 1] for i in range(student_steps)])


@dataclass(frozen=True)
class DistillationStage:
    """What every micro-batch of one distillation stage shares: the frozen teacher, both
    prediction types, the teacher paths of the student's steps, the schedule and the draws' seeds."""

    teacher: torch.nn.Module
    teacher_type: str  # prediction types: "epsilon" | "v_prediction"
    student_type: str
    paths: torch.Tensor  # (student steps, k + 1) teacher timesteps t -> ... -> t'' (student_paths)
    cumprod: torch.Tensor  # alphas_cumprod of the schedule
    config: DistillStepsConfig
    seed: int
    rank: int
    autocast: Callable[[], Any]  # the accelerator's autocast context
    world_size: int = 1


def distillation_step(stage: DistillationStage, student: torch.nn.Module, cond: torch.Tensor, uncond: torch.Tensor,
                      x0: torch.Tensor, micro_step: int) -> tuple[torch.Tensor, dict[str, float]]:
    """One micro-batch of mixed (vanilla / CFG-aware) step distillation. Returns (loss, metrics)."""
    teacher, paths, cumprod, config = stage.teacher, stage.paths, stage.cumprod, stage.config
    seed, rank, world_size = stage.seed, stage.rank, stage.world_size
    device, batch = x0.device, x0.shape[0]
    # 1. student step index per sample -> teacher path t -> ... -> t''
    index = draw_for_batch(lambda g, n: torch.randint(0, paths.shape[0], (n,), generator=g), batch, seed, micro_step,
                           rank, world_size, STREAM_TIMESTEP)
    path = paths[index].T.contiguous().to(device)  # (k + 1, B)
    noised = noise_batch(x0, path[0], cumprod, seed, micro_step, rank, world_size)
    # 2. per-sample guidance scale: 1 (vanilla) or U[a, b] (CFG-aware, probability p)
    w = draw_for_batch(lambda g, n: losses.distillation_scales(n, config.cfg_probability, config.guidance_min,
                                                               config.guidance_max, g),
                       batch, seed, micro_step, rank, world_size, STREAM_GUIDANCE).to(device)
    any_cfg = bool((w != 1.0).any())

    def guided_call(model, z, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(guided prediction, conditional prediction); one batch-2B call when any w != 1."""
        if not any_cfg:
            out = model(z, t.float(), cond)
            return out, out
        return cfg_batch(model, z, t.float(), uncond, cond, w)

    # 3. teacher: k DDIM steps with the guided prediction -> x-space target
    def teacher_predict(z, t):
        with stage.autocast():
            return guided_call(teacher, z, t)[0].float()

    x_target = losses.teacher_x_target(teacher_predict, noised.z_t, path, cumprod, stage.teacher_type)
    # 4. student: one step from z_t with the same w
    student_guided, student_cond = guided_call(student, noised.z_t, path[0])
    x_hat, _ = losses.estimates(student_guided.float(), noised.z_t, noised.alpha, noised.sigma, stage.student_type)
    # 5. L = L_dstl + gamma_eff * L_ori (L_ori on the conditional prediction)
    l_dstl = losses.distillation_loss(x_hat, x_target, noised.alpha, noised.sigma)
    l_ori = losses.original_loss(student_cond.float(), x0, noised.eps, noised.alpha, noised.sigma, stage.student_type)
    combined = losses.combine_losses(l_dstl, l_ori, config.gamma)
    metrics = {"l_dstl": float(combined.distill), "l_ori": float(combined.original), "gamma_eff": combined.gamma_effective,
               "cfg_share": float((w != 1.0).float().mean())}
    return combined.total, metrics


def _stage(config: DistillStepsConfig, teacher: Pipeline, student_unet: torch.nn.Module, teacher_steps: int,
           student_steps: int, run: TrainingConfig, title: str) -> TrainResult:
    accelerator = make_accelerator(run)
    device = accelerator.device
    # 1. frozen teacher and text encoder; data
    teacher_unet = freeze(teacher.unet).to(device)
    text = TextConditioner(teacher, device)
    latent_side = teacher.check_image_size(teacher.defaults.image_size)
    stream = make_stream(config.data, run, config.caption_dropout, teacher.defaults.image_size, accelerator)
    vae = load_vae_encoder(config.vae).to(device) if config.vae else None
    rank, world = accelerator.process_index, accelerator.num_processes
    source = LatentSource(teacher, text, latent_side, run.seed, rank, vae, teacher_steps, config.data_guidance, world)
    # the student starts from the teacher's weights, so it predicts what the teacher predicts
    distillation = DistillationStage(teacher_unet, teacher.scheduler.prediction_type, teacher.scheduler.prediction_type,
                                     student_paths(teacher.scheduler, teacher_steps, student_steps),
                                     alphas_cumprod(teacher.scheduler), config, run.seed, rank, accelerator.autocast,
                                     world)

    # 2. the loss of one micro-batch
    def step_fn(model, micro_step):
        batch = stream.batch(micro_step)
        x0 = source(batch, micro_step, device)
        return distillation_step(distillation, model, text(batch.captions), text.null(len(batch.captions)), x0,
                                 micro_step)

    # 3. train
    fingerprint = {"kind": "distill-steps", "teacher": str(config.teacher), "stage": [teacher_steps, student_steps],
                   "data": str(config.data), "layout": student_unet.layout.name,
                   **{k: v for k, v in dataclasses.asdict(config).items()
                      if k in ("cfg_probability", "guidance_min", "guidance_max", "gamma", "caption_dropout", "data_guidance")}}
    student_unet.train()
    for p in student_unet.parameters():
        p.requires_grad_(True)
    return run_training(accelerator, run, student_unet, step_fn, title, fingerprint)


def print_mapping(summary: str) -> None:
    from rich.console import Console

    Console(stderr=True, markup=False).print(f"student initialised from the teacher: {summary}", highlight=False)


def distill_steps(config: DistillStepsConfig) -> tuple[Pipeline, list[TrainResult]]:
    """Run every stage, save the student pipeline to config.training.out, return it and the results."""
    from ..modeling.loading import save_pipeline
    from ..modeling.unet_mapping import map_unet_weights

    # 1. check everything before any work
    config.validate()
    stages = config.stages()
    teacher = load_model(config.teacher, "teacher")
    for t, s in stages:
        student_paths(teacher.scheduler, t, s)

    # 2. the student: the teacher's weights, mapped onto the student layout if another
    if config.student_layout:
        layout = resolve_layout(config.student_layout)
        student_unet, report = map_unet_weights(teacher.unet, layout, seed=config.training.seed)
        print_mapping(report.summary())
    else:
        student_unet = copy.deepcopy(teacher.unet)

    # 3. stages: each stage's student is the next stage's teacher
    results = []
    current_teacher = teacher
    for n, (t, s) in enumerate(stages):
        run = config.training
        if len(stages) > 1:
            run = dataclasses.replace(run, run_dir=run.work_dir / f"stage-{n + 1}-{t}to{s}")
        result = _stage(config, current_teacher, student_unet, t, s, run, f"distill {t}->{s} steps")
        results.append(result)
        student_unet = result.model
        if n + 1 < len(stages):
            current_teacher = dataclasses.replace(teacher, unet=copy.deepcopy(student_unet))
            student_unet = copy.deepcopy(student_unet)

    # 4. save: the student with its step count as the sampling default
    student = dataclasses.replace(
        teacher, unet=freeze(student_unet.cpu()),
        defaults=dataclasses.replace(teacher.defaults, steps=config.student_steps),
        scheduler_config=None,  # the student samples with the DDIM steps it was distilled for, whatever the teacher's
        source=f"distill steps {config.teacher_steps}->{config.student_steps} from {config.teacher}",
    )
    student.text_encoder.cpu()
    on_main_process(lambda: save_pipeline(student, Path(config.training.out), overwrite=config.training.overwrite))
    return student, results
