"""`snapfusion-coreml generate`: the PyTorch reference pipeline, prompt -> PNG."""

from __future__ import annotations

import os
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
    model: Optional[str] = typer.Argument(None, help="Model folder or hub id [default: the bundled models/default]"),
    prompt: str = typer.Option(..., "--prompt", help="Text prompt"),
    out: Path = typer.Option(..., "-o", "--out", help="Output PNG file"),
    steps: Optional[int] = typer.Option(None, "--steps", help="Sampling steps [default: the model's]"),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Guidance scale w (1 = none) [default: the model's]"),
    seed: int = typer.Option(0, "--seed", help="Seed of torch.randn on a CPU generator (reproduced by the Swift app)"),
    image_size: Optional[str] = typer.Option(None, "--image-size", help="Pixels: SIDE or HEIGHTxWIDTH, e.g. 512x768 [default: the model's]"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda"),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow loading pickle weights"),
) -> None:
    """Generate an image with the PyTorch pipeline (CPU, or GPU when present)."""
    import torch
    from PIL import Image

    from ..image_size import latent_size, parse_image_size
    from ..modeling.loading import ModelFolder
    from ..modeling.attention import AttentionImpl

    if out.suffix.lower() != ".png":
        raise UserError(f"expected an output file ending in .png, got {out}")
    if device not in ("auto", "cpu", "cuda"):
        raise UserError(f"expected --device auto, cpu or cuda, got {device!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    size = parse_image_size(image_size)
    folder = ModelFolder(str(model or DEFAULT_MODEL), attention=AttentionImpl.ORIGINAL, allow_pickle=allow_pickle)
    if size is not None:  # refuse a size the UNet cannot take before reading any weights
        latent_size(size, folder.layout.latent_divisor, folder.layout.num_levels)
    pipeline = folder.pipeline()
    for module in (pipeline.text_encoder, pipeline.unet, pipeline.decoder):
        module.to(device)
    total = steps or pipeline.defaults.steps
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("denoising", total=total)
        image = pipeline.generate(prompt, steps, guidance, seed, size,
                                  on_step=lambda i, t, z: progress.update(task, completed=i + 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        Image.fromarray(image).save(tmp, format="PNG")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    console.print(f"wrote {out} ({image.shape[1]}x{image.shape[0]}, {total} steps, seed {seed})", highlight=False)
