"""`snapfusion-coreml eval MODEL -o DIR` (quality over a guidance sweep) and
`snapfusion-coreml eval train-judge -o DIR` (the shapes-domain attribute judge)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup

from ..assets import default_model_dir
from ..errors import UserError
from .options import SEED_MAX, at_least, finite, one_of, print_json, seed_in_range, stderr_console, stdout_console

console = stderr_console()


class _RunByDefault(TyperGroup):
    """`eval MODEL ...` means `eval run MODEL ...`: any first argument that is not a subcommand."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        elif not args:
            args = ["run"]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(cls=_RunByDefault, help="Quality evaluation: judge accuracy / CLIP score and Frechet distances "
                                              "over a guidance sweep, for a model folder or a converted folder.")


def _floats(option: str):
    """A callback: comma-separated finite numbers -> a tuple of floats, refused in one line while parsing."""

    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise UserError(f"expected {option} as comma-separated numbers, got {text!r}") from None
        for value in values:
            finite(option)(value)
        return values

    return parse


@eval_app.command("run")
def run_command(
    model: Optional[str] = typer.Argument(None, help="Model folder, or converted folder OUT (with pipeline.json) "
                                                     "[default: the bundled models/default]"),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (results.json, results.md, sweep.png, grid.png, images/)"),
    prompts: str = typer.Option("shapes:3", "--prompts", help="shapes[:SEED] (the data set grammar) or a prompt-list file"),
    count: int = typer.Option(32, "--count", callback=at_least(2, "--count"), help="Images per guidance value (prompt i uses seed SEED + i)"),
    guidance: str = typer.Option("1,2,4,7.5", "--guidance", callback=_floats("--guidance"), help="Guidance values to sweep, comma-separated"),
    steps: Optional[int] = typer.Option(None, "--steps", callback=at_least(1, "--steps"), help="Sampling steps [default: the model's]"),
    seed: int = typer.Option(0, "--seed", callback=seed_in_range("--seed"), help="Seed of the first image"),
    precision: str = typer.Option("fp16", "--precision", callback=one_of("--precision", ("fp16", "fp32")),
                                   help="Converted folders: interpreter precision fp16 or fp32"),
    reference: Optional[str] = typer.Option(None, "--reference", help="Real images for Frechet distances: an image folder "
                                                                      "or shapes[:SEED] [default: shapes:4 for shapes prompts]"),
    reference_count: int = typer.Option(256, "--reference-count", callback=at_least(2, "--reference-count"),
                                         help="Real images to use"),
    judge: Optional[str] = typer.Option(None, "--judge", help="Judge folder [default: models/judge for shapes prompts]"),
    clip: Optional[str] = typer.Option(None, "--clip", help="CLIP weights: open_clip checkpoint file or transformers CLIP folder"),
    clip_model: str = typer.Option("ViT-g-14", "--clip-model", help="open_clip architecture of a --clip checkpoint file"),
    inception: Optional[str] = typer.Option(None, "--inception", help="FID Inception weights: TorchScript "
                                                                      "inception-2015-12-05.pt or a torch-fidelity state dict"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder"),
    as_json: bool = typer.Option(False, "--json", help="Print the results (results.json) as JSON instead of the table"),
) -> None:
    """Generate COUNT images per guidance value and score them (written to OUT atomically)."""
    if seed + count - 1 > SEED_MAX:  # image i uses seed SEED + i
        raise UserError(f"expected --seed + --count - 1 <= {SEED_MAX} (2**64-1), got {seed + count - 1}")
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..eval.outputs import markdown, write_outputs
    from ..eval.run import EvalSettings, evaluate
    from ..io import atomic_directory, claim_output

    source = str(model or default_model_dir())
    # OUT may not be, hold or lie in any folder this run reads
    with claim_output(out, overwrite, inputs=[source, judge, reference, clip, inception]):  # before minutes of generation
        settings = EvalSettings(prompts, count, guidance, steps, seed, precision, reference,
                                reference_count, judge, clip, clip_model, inception)
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("generating", total=count * len(settings.guidance))
            done = {"n": 0}

            def on_image(w: float, i: int, total: int) -> None:
                done["n"] += 1
                progress.update(task, completed=done["n"], total=total * len(settings.guidance),
                                description=f"generating (w={w:g})")

            with atomic_directory(out, overwrite) as tmp:  # nothing at OUT until every file is written
                result = evaluate(source, settings, tmp / "images", on_image)
                write_outputs(result, tmp)
    if as_json:
        print_json({"out": str(out), **json.loads((out / "results.json").read_text())})
    else:
        stdout_console().print(markdown(result), highlight=False)
    console.print(f"wrote {out} in {result.seconds:.0f} s", highlight=False)


@eval_app.command("train-judge")
def train_judge_command(
    out: Path = typer.Option(..., "-o", "--out", help="Judge folder to write (judge.json + model.safetensors)"),
    seed: int = typer.Option(1, "--seed", callback=seed_in_range("--seed"), help="Data set seed of the training scenes"),
    held_out_seed: int = typer.Option(2, "--held-out-seed", callback=seed_in_range("--held-out-seed"), help="Data set seed of the accuracy report"),
    train_images: int = typer.Option(0, "--train-images", callback=at_least(0, "--train-images"), help="Training scenes [default: the recipe's]"),
    epochs: int = typer.Option(0, "--epochs", callback=at_least(0, "--epochs"), help="Epochs [default: the recipe's]"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing judge folder"),
    as_json: bool = typer.Option(False, "--json", help="Print the judge's record (accuracy, settings, time) as JSON"),
) -> None:
    """Train the attribute judge of the shapes domain (deterministic, minutes on a CPU)."""
    import dataclasses

    from ..eval.train_judge import JudgeTraining, train_judge

    if out.exists() and not overwrite:
        raise UserError(f"output folder {out} already exists; pass --overwrite to replace it")
    training = JudgeTraining(seed=seed, held_out_seed=held_out_seed)
    changes = {k: v for k, v in (("train_images", train_images), ("epochs", epochs)) if v}
    training = dataclasses.replace(training, **changes)
    command = "snapfusion-coreml " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    _, meta = train_judge(training, out, overwrite, command=command,
                          on_epoch=lambda e, loss: console.print(f"epoch {e}/{training.epochs}: loss {loss:.4f}", highlight=False))
    acc = meta["held_out_accuracy"]
    console.print(f"wrote {out}: held-out accuracy (seed {held_out_seed}) shape {acc['shape']:.3f}, color {acc['color']:.3f}, "
                  f"background {acc['background']:.3f}, all three {acc['all']:.3f} ({meta['train_seconds']:.0f} s)",
                  highlight=False)
    if as_json:
        print_json({"out": str(out), **meta})


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
