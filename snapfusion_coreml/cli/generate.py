"""`snapfusion-coreml generate`: prompt -> PNG, with the PyTorch pipeline of a model folder or with
the Core ML packages of a converted folder (run by the Linux interpreter); `--init-image PNG
--strength S` starts from an image instead (image to image, through the VAE encoder)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Optional

import typer

from ..errors import check_interrupted
from ..generation import GenerateRequest, generate_png
from .options import at_least, eta_option, finite, image_size_option, one_of, print_json, sampler_option, seed_in_range, stderr_console


def register(app: typer.Typer) -> None:
    app.command()(generate)


def generate(
    model: Optional[str] = typer.Argument(None, help="Model folder or hub id, or a converted folder OUT (with pipeline.json) "
                                                     "[default: the bundled models/default]"),
    prompt: str = typer.Option(..., "--prompt", help="Text prompt"),
    negative_prompt: str = typer.Option("", "--negative-prompt", help="What guidance steers away from (the unconditional "
                                                                      "prompt; used only where guidance runs, w > 1)"),
    out: Path = typer.Option(..., "-o", "--out", help="Output PNG file"),
    steps: Optional[int] = typer.Option(None, "--steps", callback=at_least(1, "--steps"),
                                        help="Sampling steps [default: the model's; OUT: its sampler's default_steps]"),
    sampler: Optional[str] = sampler_option(),
    eta: Optional[float] = eta_option(),
    guidance: Optional[float] = typer.Option(None, "--guidance", callback=finite("--guidance"),
                                             help="Guidance scale w (1 = none) [default: the model's]"),
    seed: int = typer.Option(0, "--seed", callback=seed_in_range("--seed"),
                             help="Seed of torch.randn on a CPU generator, 0..2**64-1 (reproduced by the Swift app)"),
    image_size: Optional[str] = typer.Option(None, "--image-size", callback=image_size_option,
                                             help="Pixels: SIDE or HEIGHTxWIDTH, e.g. 512x768 [default: the model's]"),
    device: str = typer.Option("auto", "--device", callback=one_of("--device", ("auto", "cpu", "cuda")),
                               help="auto, cpu or cuda (model folders; OUT runs on the CPU)"),
    precision: Optional[str] = typer.Option(None, "--precision", callback=one_of("--precision", ("fp16", "fp32")),
                                            help="OUT only: fp16 (the program's declared precision, as on device) "
                                                 "or fp32 [default: fp16]"),
    init_image: Optional[Path] = typer.Option(None, "--init-image",
                                              help="Start from this image (image to image): center-cropped to the "
                                                   "image size's aspect ratio and resized (Lanczos)"),
    strength: Optional[float] = typer.Option(None, "--strength",
                                             help="With --init-image: how much of the schedule runs, in (0, 1] "
                                                  "(1 ignores the image's content) [default: 0.8]"),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow loading pickle weights"),
    as_json: bool = typer.Option(False, "--json", help="Print the result (file, size, steps, seed) as JSON"),
) -> None:
    """Generate an image with the PyTorch pipeline (CPU, or GPU when present), or, given a converted
    folder, with its Core ML packages run by the interpreter: the image the phone draws."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    request = GenerateRequest(prompt, out, model, negative_prompt, steps, sampler, eta, guidance, seed, image_size,
                              device, precision, init_image, strength, allow_pickle)
    console = stderr_console()
    with ExitStack() as stack:  # the progress bar opens once the model is loaded and the steps are known
        bar: list = []

        def on_step(done: int, total: int) -> None:
            check_interrupted()
            if not bar:
                progress = stack.enter_context(Progress(TextColumn("{task.description}"), BarColumn(),
                                                        TextColumn("{task.completed}/{task.total}"),
                                                        TimeElapsedColumn(), console=console))
                bar.extend((progress, progress.add_task("denoising", total=total)))
            bar[0].update(bar[1], completed=done)

        result = generate_png(request, on_step)
    if as_json:
        print_json(result.to_dict())
    else:
        console.print(result.summary())
