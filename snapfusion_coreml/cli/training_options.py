"""The options every training command shares (`train autoencoder|base|v-pred`, `distill steps|decoder`,
`evolve`), declared once: a command takes one `training: TrainingOptions` parameter and
`@training_options(...)` gives it the twelve options, with the command's own defaults."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from .options import at_least, finite, seed_in_range

MaxSteps = Annotated[int, typer.Option(callback=at_least(1, "--max-steps"), help="Optimizer steps (per stage or per evolve iteration).")]
Seed = Annotated[int, typer.Option(callback=seed_in_range("--seed"), help="Seed of every random draw (data order, noise, timesteps).")]
BatchSize = Annotated[int, typer.Option(callback=at_least(1, "--batch-size"), help="Micro-batch size per process.")]
LearningRate = Annotated[float, typer.Option("--lr", callback=finite("--lr", minimum=0.0), help="AdamW learning rate.")]
Accumulate = Annotated[int, typer.Option(callback=at_least(1, "--gradient-accumulation-steps"), help="Gradient accumulation steps.")]
Precision = Annotated[str, typer.Option(help="Mixed precision: no, fp16 or bf16.")]
EmaDecay = Annotated[float, typer.Option(callback=finite("--ema-decay", minimum=0.0), help="EMA decay of the student weights (0: off; the saved model uses the EMA).")]
CheckpointEvery = Annotated[int, typer.Option(callback=at_least(0, "--checkpoint-every"), help="Steps between atomic checkpoints (0: none).")]
RunDir = Annotated[Optional[Path], typer.Option(help="Checkpoints and log.jsonl [default: OUT.run].")]
Resume = Annotated[bool, typer.Option(help="Continue from the newest checkpoint in the run folder.")]
Overwrite = Annotated[bool, typer.Option(help="Replace an existing OUT.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result (OUT, steps, losses) as JSON.")]


@dataclass(frozen=True)
class TrainingOptions:
    """The shared options as given; each field's type alias is its typer option."""

    max_steps: MaxSteps = 1000
    seed: Seed = 0
    batch_size: BatchSize = 4
    lr: LearningRate = 1e-5
    gradient_accumulation_steps: Accumulate = 1
    mixed_precision: Precision = "no"
    ema_decay: EmaDecay = 0.9999
    checkpoint_every: CheckpointEvery = 500
    run_dir: RunDir = None
    resume: Resume = True
    overwrite: Overwrite = False
    as_json: AsJson = False

    def config(self, out: Path, models=()):
        """The train/ settings; refuses an OUT or run folder that is, holds or lies in one of the
        input `models` or of the declared inputs (writing it would change them) before anything loads."""
        from ..io import check_separate
        from ..train.loop import TrainingConfig

        check_separate(out, models)
        check_separate(self.run_dir or out.with_name(out.name + ".run"), models, what="a run folder")
        return TrainingConfig(out=out, max_steps=self.max_steps, seed=self.seed, batch_size=self.batch_size,
                              learning_rate=self.lr, gradient_accumulation_steps=self.gradient_accumulation_steps,
                              mixed_precision=self.mixed_precision, ema_decay=self.ema_decay,
                              checkpoint_every=self.checkpoint_every, run_dir=self.run_dir, resume=self.resume,
                              overwrite=self.overwrite)


def training_options(fixed: tuple[str, ...] = (), **defaults: Any) -> Callable:
    """Give a command the shared options in place of its `training` parameter: `defaults` override
    TrainingOptions' defaults, `fixed` options are not offered (they keep the default given)."""

    def decorate(command: Callable) -> Callable:
        base = TrainingOptions(**defaults)
        hints = inspect.get_annotations(TrainingOptions, eval_str=True)
        offered = [f.name for f in fields(TrainingOptions) if f.name not in fixed]
        shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=getattr(base, name),
                                    annotation=hints[name]) for name in offered]
        params = []
        for param in inspect.signature(command, eval_str=True).parameters.values():
            params += shared if param.name == "training" else [param.replace(kind=inspect.Parameter.KEYWORD_ONLY)]

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in offered}
            return command(training=TrainingOptions(**{**defaults, **given}), **kwargs)

        run.__signature__ = inspect.Signature(params)
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run

    return decorate
