"""`snapfusion-coreml generate`: the PyTorch reference pipeline, prompt -> PNG."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from ..errors import UserError, check_interrupted
from ..io import os_error, writable_parent
from ..modeling.source import resolve_model_path
from .options import DEFAULT_MODEL, at_least, finite, one_of, print_json, seed_in_range, stderr_console


def register(app: typer.Typer) -> None:
    app.command()(generate)


def generate(
    model: Optional[str] = typer.Argument(None, help="Model folder or hub id [default: the bundled models/default]"),
    prompt: str = typer.Option(..., "--prompt", help="Text prompt"),
    out: Path = typer.Option(..., "-o", "--out", help="Output PNG file"),
    steps: Optional[int] = typer.Option(None, "--steps", callback=at_least(1, "--steps"),
                                        help="Sampling steps [default: the model's]"),
    guidance: Optional[float] = typer.Option(None, "--guidance", callback=finite("--guidance"),
                                             help="Guidance scale w (1 = none) [default: the model's]"),
    seed: int = typer.Option(0, "--seed", callback=seed_in_range("--seed"),
                             help="Seed of torch.randn on a CPU generator, 0..2**64-1 (reproduced by the Swift app)"),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Image side in pixels [default: the model's]"),
    device: str = typer.Option("auto", "--device", callback=one_of("--device", ("auto", "cpu", "cuda")),
                               help="auto, cpu or cuda"),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow loading pickle weights"),
    as_json: bool = typer.Option(False, "--json", help="Print the result (file, size, steps, seed) as JSON"),
) -> None:
    """Generate an image with the PyTorch pipeline (CPU, or GPU when present)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if out.suffix.lower() != ".png":
        raise UserError(f"expected an output file ending in .png, got {out}")
    if out.is_dir():
        raise UserError(f"expected an output file ending in .png, got a folder: {out}")
    writable_parent(out)
    resolve_model_path(str(model or DEFAULT_MODEL))  # a missing MODEL fails before torch is imported

    import torch
    from PIL import Image

    from ..modeling.attention import AttentionImpl
    from ..modeling.loading import load_pipeline

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    pipeline = load_pipeline(str(model or DEFAULT_MODEL), attention=AttentionImpl.ORIGINAL, allow_pickle=allow_pickle)
    for module in (pipeline.text_encoder, pipeline.unet, pipeline.decoder):
        module.to(device)
    total = steps or pipeline.defaults.steps
    console = stderr_console()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("denoising", total=total)
        image = pipeline.generate(prompt, steps, guidance, seed, image_size,
                                  on_step=lambda i, t, z: (check_interrupted(), progress.update(task, completed=i + 1)))
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp, format="PNG")
        os.replace(tmp, out)
    except OSError as exc:
        raise os_error(exc, out) from None
    finally:
        tmp.unlink(missing_ok=True)
    if as_json:
        print_json({"out": str(out), "width": image.shape[1], "height": image.shape[0], "steps": total, "seed": seed})
    else:
        console.print(f"wrote {out} ({image.shape[1]}x{image.shape[0]}, {total} steps, seed {seed})")
