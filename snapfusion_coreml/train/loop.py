"""The training loop every command shares: accelerate, AdamW, EMA, atomic checkpoints, exact
resume, a progress bar and JSON-lines logs.

Scale without code changes: the same function runs single-process on a laptop CPU and under
`accelerate launch` (multi-GPU, multi-node; mixed precision and gradient accumulation from the
TrainingConfig). Only the main process writes files. Per-step randomness (batches, noise,
timesteps, guidance scales, skipped blocks) is drawn from generators seeded by
(seed, micro-step, process) (data.step_generator), so a resumed run repeats the uninterrupted
run's loss curve exactly: a checkpoint holds the weights, the optimizer, the EMA, the step and
every process's global RNG state (for any module that draws from it).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import UserError
from ..optional import require
from . import checkpoint as ckpt
from .ema import EMA

EVAL_MICRO_STEP = 2**40  # a micro-step no training run reaches: a fixed, held-out evaluation batch
StepFn = Callable[[nn.Module, int], tuple[torch.Tensor, dict[str, float]]]  # (model, micro_step) -> (loss, metrics)
MIXED_PRECISION = ("no", "fp16", "bf16")


@dataclass(frozen=True)
class TrainingConfig:
    """Options shared by every training command (each command's config holds one)."""

    out: Path  # the model folder written at the end (save_pipeline: convert and verify accept it)
    max_steps: int = 1000  # optimizer steps
    seed: int = 0
    batch_size: int = 4  # per process and micro-step
    learning_rate: float = 1e-5
    weight_decay: float = 0.01  # AdamW, the paper's value
    warmup_steps: int = 0  # linear learning-rate warm-up
    max_grad_norm: float = 1.0  # 0 disables clipping
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"  # "no" | "fp16" | "bf16" (accelerate's autocast)
    ema_decay: float = 0.9999  # 0 disables EMA; with EMA the saved model holds the EMA weights
    checkpoint_every: int = 500  # optimizer steps between checkpoints; 0 disables
    keep_checkpoints: int = 2
    run_dir: Path | None = None  # checkpoints and log.jsonl; default OUT.run beside OUT
    resume: bool = True  # continue from the newest checkpoint in run_dir if there is one
    overwrite: bool = False  # replace an existing OUT at the end
    progress: bool = True
    evaluate: bool = True  # loss of a fixed held-out micro-batch before and after training

    @property
    def work_dir(self) -> Path:
        return Path(self.run_dir) if self.run_dir else Path(self.out).with_name(Path(self.out).name + ".run")

    def fingerprint(self) -> dict[str, Any]:
        """What must match to resume (not the length of the run, nor where files go)."""
        skip = {"out", "max_steps", "checkpoint_every", "keep_checkpoints", "run_dir", "resume", "overwrite", "progress",
                "evaluate"}
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items() if k not in skip}

    def validate(self) -> None:
        if self.max_steps < 0:
            raise UserError(f"expected --max-steps >= 0, got {self.max_steps}")
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise UserError(f"expected batch size and gradient accumulation steps >= 1, got {self.batch_size} and "
                            f"{self.gradient_accumulation_steps}")
        if self.mixed_precision not in MIXED_PRECISION:
            raise UserError(f"expected --mixed-precision one of {MIXED_PRECISION}, got {self.mixed_precision!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise UserError(f"expected --ema-decay in [0, 1), got {self.ema_decay}")
        if Path(self.out).exists() and not self.overwrite:
            raise UserError(f"output folder {self.out} already exists; pass --overwrite to replace it")


@dataclass
class TrainResult:
    model: nn.Module  # unwrapped; holds the EMA weights when EMA is on
    losses: list[float] = field(default_factory=list)  # the loss of every step run in this call
    start_step: int = 0
    steps: int = 0  # the step reached
    log_path: Path | None = None
    eval_before: float | None = None  # the loss of the fixed evaluation micro-batch before training
    eval_after: float | None = None  # ... and after (with the weights that are kept)


def make_accelerator(run: TrainingConfig):
    """An Accelerator from the run's options; `accelerate launch` settings (processes, nodes) apply."""
    require("accelerate", "train", "training")
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(mixed_precision=run.mixed_precision, gradient_accumulation_steps=run.gradient_accumulation_steps)
    if accelerator.device.type == "cpu":
        # subnormal floats (small weights and gradients of fresh models) make CPU kernels up to ~20x slower
        torch.set_flush_denormal(True)
    set_seed(run.seed + accelerator.process_index)
    return accelerator


class JsonLog:
    """Append-only JSON lines; on resume, only the step records up to the resumed step are kept."""

    def __init__(self, path: Path, enabled: bool, resume_step: int):
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_step > 0 and path.is_file():
            records = [(line, json.loads(line)) for line in path.read_text().splitlines() if line]
            kept = [line for line, r in records if "loss" in r and r["step"] <= resume_step]
        path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a") as fh:
                fh.write(json.dumps(record) + "\n")


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line]


def _progress(enabled: bool, title: str, total: int, start: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]}"), TimeRemainingColumn(),
                        disable=not enabled)
    task = progress.add_task(title, total=total, completed=start, loss="-", speed="")
    return progress, task


def _save(accelerator, run: TrainingConfig, model: nn.Module, ema: EMA | None, optimizer, step: int,
          fingerprint: dict[str, Any]) -> None:
    tmp = ckpt.partial_path(run.work_dir, step)
    if accelerator.is_main_process:
        ckpt.begin_checkpoint(run.work_dir, step)
    accelerator.wait_for_everyone()
    ckpt.write_rng(tmp, accelerator.process_index)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        ckpt.write_payload(tmp, accelerator.unwrap_model(model).state_dict(), ema.state_dict() if ema else None,
                           optimizer.state_dict())
        ckpt.commit_checkpoint(run.work_dir, tmp, step, fingerprint, run.keep_checkpoints)
    accelerator.wait_for_everyone()


def _resume(accelerator, run: TrainingConfig, model: nn.Module, ema: EMA | None, optimizer,
            fingerprint: dict[str, Any]) -> int:
    if not run.resume:
        if accelerator.is_main_process:
            shutil.rmtree(ckpt.checkpoint_dir(run.work_dir), ignore_errors=True)
        accelerator.wait_for_everyone()
        return 0
    found = ckpt.latest_checkpoint(run.work_dir)
    if found is None:
        return 0
    if found.fingerprint != fingerprint:
        diff = sorted(k for k in set(found.fingerprint) | set(fingerprint) if found.fingerprint.get(k) != fingerprint.get(k))
        raise UserError(f"expected a checkpoint of the same configuration to resume, got one that differs in {diff} "
                        f"(in {found.path}); pass --no-resume to start over or another --run-dir")
    model_state, ema_state, optimizer_state, rng = ckpt.read_checkpoint(found, accelerator.process_index)
    accelerator.unwrap_model(model).load_state_dict(model_state)
    optimizer.load_state_dict(optimizer_state)
    if ema is not None:
        if ema_state is None:
            raise UserError(f"expected EMA weights in the checkpoint, got none (in {found.path})")
        ema.load_state_dict(ema_state)
    if rng is not None:
        ckpt.set_rng_state(rng)
    return found.step


def run_training(accelerator, run: TrainingConfig, model: nn.Module, step_fn: StepFn, title: str,
                 fingerprint: dict[str, Any]) -> TrainResult:
    """Train `model` (its parameters with requires_grad) for run.max_steps optimizer steps.

    step_fn(model, micro_step) computes one micro-batch's loss with the prepared model; every
    random draw in it must come from data.step_generator(seed, micro_step, rank, ...).
    """
    fingerprint = {**run.fingerprint(), **fingerprint, "title": title}
    # 1. optimizer and accelerate
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=run.learning_rate, weight_decay=run.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    ema = EMA(unwrapped, run.ema_decay) if run.ema_decay > 0 else None

    # 2. resume from the newest complete checkpoint
    start = _resume(accelerator, run, model, ema, optimizer, fingerprint)
    log = JsonLog(run.work_dir / "log.jsonl", accelerator.is_main_process, start)
    result = TrainResult(unwrapped, start_step=start, steps=start, log_path=log.path)

    # 3. train
    result.eval_before = evaluate(model, step_fn) if run.evaluate else None
    model.train()
    progress, task = _progress(run.progress and accelerator.is_main_process, title, run.max_steps, start)
    with progress:
        for step in range(start, run.max_steps):
            tic = time.perf_counter()
            lr = run.learning_rate * (min(1.0, (step + 1) / run.warmup_steps) if run.warmup_steps else 1.0)
            for group in optimizer.param_groups:
                group["lr"] = lr
            totals: dict[str, float] = {}
            for micro in range(run.gradient_accumulation_steps):
                with accelerator.accumulate(model):
                    loss, metrics = step_fn(model, step * run.gradient_accumulation_steps + micro)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"non-finite loss {loss.item()} at step {step + 1}")
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and run.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(model.parameters(), run.max_grad_norm)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                for key, value in {"loss": float(loss.detach()), **metrics}.items():
                    totals[key] = totals.get(key, 0.0) + value / run.gradient_accumulation_steps
            if ema is not None:
                ema.update(unwrapped)
            reduced = accelerator.reduce(torch.tensor(list(totals.values()), device=accelerator.device), "mean")
            record = dict(zip(totals, (float(v) for v in reduced)))
            elapsed = time.perf_counter() - tic
            samples = run.batch_size * run.gradient_accumulation_steps * accelerator.num_processes
            log.write({"step": step + 1, **record, "lr": lr, "samples_per_s": samples / max(elapsed, 1e-9)})
            result.losses.append(record["loss"])
            result.steps = step + 1
            progress.update(task, completed=step + 1, loss=f"{record['loss']:.4g}", speed=f"{samples / max(elapsed, 1e-9):.2f} samples/s")
            if run.checkpoint_every and (step + 1) % run.checkpoint_every == 0:
                _save(accelerator, run, model, ema, optimizer, step + 1, fingerprint)

    # 4. the weights to keep: EMA when enabled
    model.eval()
    if ema is not None:
        ema.copy_to(unwrapped)
    result.eval_after = evaluate(model, step_fn) if run.evaluate else None
    if result.eval_after is not None:
        log.write({"eval_before": result.eval_before, "eval_after": result.eval_after, "step": result.steps})
    return result


def on_main_process(write: Callable[[], Any]) -> None:
    """Run `write` (saving the result) on the main process only; every process waits for it."""
    from accelerate import PartialState

    state = PartialState()
    if state.is_main_process:
        write()
    state.wait_for_everyone()


def evaluate(model: nn.Module, step_fn: StepFn) -> float:
    """The loss of the fixed evaluation micro-batch (same data, noise and timesteps every time)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        loss, _ = step_fn(model, EVAL_MICRO_STEP)
    model.train(was_training)
    return float(loss)
