"""`snapfusion-coreml generate`: prompt -> PNG, with the PyTorch pipeline of a model folder or with
the Core ML packages of a converted folder (run by the Linux interpreter); `--init-image PNG
--strength S` starts from an image instead (image to image, through the VAE encoder)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..assets import default_model_dir
from ..errors import UserError, check_interrupted
from ..io import claim_file, os_error, writable_parent
from ..modeling.source import resolve_model_path
from .options import at_least, check_image_size_fits, check_steps_fit, eta_option, finite, image_size_option, one_of, print_json, sampler_option, seed_in_range, stderr_console


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

    from ..contracts.pipeline_json import PIPELINE_JSON

    if out.suffix.lower() != ".png":
        raise UserError(f"expected an output file ending in .png, got {out}")
    if strength is not None and init_image is None:
        raise UserError(f"expected --strength only with --init-image, got --strength {strength} alone")
    if init_image is not None:
        from ..init_image import open_init_image
        from ..samplers.img2img import check_strength

        strength = check_strength(0.8 if strength is None else strength)
        start = open_init_image(init_image)  # a bad file fails before any model is read
    if out.is_dir():
        raise UserError(f"expected an output file ending in .png, got a folder: {out}")
    writable_parent(out)
    claim_file(out)  # Ctrl-C from here on: "interrupted; OUT untouched"
    converted = model is not None and (Path(model) / PIPELINE_JSON).is_file()
    if converted and device == "cuda":
        raise UserError("expected --device auto or cpu for a converted folder (the interpreter runs on the CPU), got cuda")
    if not converted:
        if precision is not None:
            raise UserError(f"expected --precision only with a converted folder (with {PIPELINE_JSON}), got a model: {model or default_model_dir()}")
        model_path = resolve_model_path(str(model or default_model_dir()))  # a missing MODEL fails before torch is imported
        check_image_size_fits(image_size, model_path)
    else:  # one of the sizes the folder was converted for, from pipeline.json alone
        from ..contracts.pipeline_json import PipelineManifest

        PipelineManifest.read(model).size(image_size, str(Path(model) / PIPELINE_JSON))
    check_steps_fit(steps, Path(model) if converted else model_path, converted)

    import torch

    from ..io import write_png

    if converted:
        from ..interpreter.backend import load_package_pipeline

        pipeline = load_package_pipeline(model, precision or "fp16")
        if init_image is not None and "encoder" not in pipeline.folder.components:
            raise UserError(f"expected a VAE encoder in {model} for --init-image, found none: "
                            "convert with --components including encoder")
    else:
        from ..modeling.attention import AttentionImpl
        from ..modeling.loading import ModelFolder

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        folder = ModelFolder(str(model or default_model_dir()), attention=AttentionImpl.ORIGINAL, allow_pickle=allow_pickle)
        if init_image is not None:
            from ..samplers.img2img import start_index

            start_index(steps or folder.defaults.steps, strength)  # too few steps: before the weights are read
            if not folder.has_encoder:
                raise UserError(f"expected a model with a VAE encoder for --init-image, got {folder.source} without one")
        pipeline = folder.pipeline()
        for module in (pipeline.text_encoder, pipeline.unet, pipeline.decoder, pipeline.encoder):
            if module is not None:
                module.to(device)
    from ..samplers.img2img import start_index
    from ..samplers.plan import plan

    settings = pipeline.sampler_settings(sampler, eta)
    total = plan(settings, pipeline.scheduler, steps or pipeline.defaults.steps).calls  # refuses impossible steps
    if init_image is not None:
        total -= start_index(steps or pipeline.defaults.steps, strength)
    image_args = {} if init_image is None else {"init_image": start, "strength": strength}

    console = stderr_console()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("denoising", total=total)
        try:
            image = pipeline.generate(prompt, steps, guidance, seed, image_size,
                                      on_step=lambda i, t, z: (check_interrupted(), progress.update(task, completed=i + 1)),
                                      negative_prompt=negative_prompt, sampler=settings, **image_args)
        finally:
            if converted:
                pipeline.close()  # a Core AI folder's loaded assets
    try:
        write_png(out, image)
    except OSError as exc:
        raise os_error(exc, out) from None
    backend = pipeline.runtime if converted else "PyTorch"
    if as_json:
        print_json({"out": str(out), "width": image.shape[1], "height": image.shape[0], "steps": steps or pipeline.defaults.steps,
                    "sampler": settings.name, "unet_steps": total, "seed": seed, "backend": backend,
                    **({} if init_image is None else {"init_image": str(init_image), "strength": strength})})
    else:
        what = "" if init_image is None else f", from {init_image} at strength {strength:g}"
        console.print(f"wrote {out} ({image.shape[1]}x{image.shape[0]}, {settings.name}, {total} steps, seed {seed}{what}, {backend})")
