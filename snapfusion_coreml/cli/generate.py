"""`snapfusion-coreml generate`: prompt -> PNG, with the PyTorch pipeline of a model folder or with
the Core ML packages of a converted folder (run by the Linux interpreter)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import UserError
from .options import DEFAULT_MODEL

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command()(generate)


def generate(
    model: Optional[str] = typer.Argument(None, help="Model folder or hub id, or a converted folder OUT (with pipeline.json) "
                                                     "[default: the bundled models/default]"),
    prompt: str = typer.Option(..., "--prompt", help="Text prompt"),
    out: Path = typer.Option(..., "-o", "--out", help="Output PNG file"),
    steps: Optional[int] = typer.Option(None, "--steps", help="Sampling steps [default: the model's; OUT: its sampler.timesteps]"),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Guidance scale w (1 = none) [default: the model's]"),
    seed: int = typer.Option(0, "--seed", help="Seed of torch.randn on a CPU generator (reproduced by the Swift app)"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Image side in pixels [default: the model's]"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda (model folders; OUT runs on the CPU)"),
    precision: Optional[str] = typer.Option(None, "--precision", help="OUT only: fp16 (the program's declared precision, "
                                                                       "as on device) or fp32 [default: fp16]"),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow loading pickle weights"),
) -> None:
    """Generate an image with the PyTorch pipeline (CPU, or GPU when present), or, given a converted
    folder, with its Core ML packages run by the interpreter: the image the phone draws."""
    import torch

    from ..io import write_png
    from ..convert.manifest import MANIFEST

    if out.suffix.lower() != ".png":
        raise UserError(f"expected an output file ending in .png, got {out}")
    if device not in ("auto", "cpu", "cuda"):
        raise UserError(f"expected --device auto, cpu or cuda, got {device!r}")
    converted = model is not None and (Path(model) / MANIFEST).is_file()
    if converted:
        from ..interpret.backend import load_package_pipeline

        if device == "cuda":
            raise UserError("expected --device auto or cpu for a converted folder (the interpreter runs on the CPU), got cuda")
        pipeline = load_package_pipeline(model, precision or "fp16")
        total = steps or len(pipeline.timesteps)
    else:
        from ..modeling.attention import AttentionImpl
        from ..modeling.loading import load_pipeline

        if precision is not None:
            raise UserError(f"expected --precision only with a converted folder (with {MANIFEST}), got a model: {model or DEFAULT_MODEL}")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        pipeline = load_pipeline(str(model or DEFAULT_MODEL), attention=AttentionImpl.ORIGINAL, allow_pickle=allow_pickle)
        for module in (pipeline.text_encoder, pipeline.unet, pipeline.decoder):
            module.to(device)
        total = steps or pipeline.defaults.steps
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("denoising", total=total)
        image = pipeline.generate(prompt, steps, guidance, seed, image_size,
                                  on_step=lambda i, t, z: progress.update(task, completed=i + 1))
    write_png(out, image)
    backend = f"Core ML packages, interpreter {precision or 'fp16'}" if converted else "PyTorch"
    console.print(f"wrote {out} ({image.shape[1]}x{image.shape[0]}, {total} steps, seed {seed}, {backend})", highlight=False)
