"""`snapfusion-coreml convert`: a pipeline folder -> Core ML packages + pipeline.json."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import List, Optional

import typer

from ..convert_spec import DEFAULT_COMPONENTS, parse_components, parse_lora_option, parse_palettize
from ..errors import check_interrupted
from ..modeling.attention_impl import AttentionImpl
from .options import (
    Target,
    at_least,
    eta_option,
    finite,
    human_bytes,
    image_sizes_option,
    one_of,
    print_json,
    print_titled,
    sampler_option,
    stderr_console,
    stdout_console,
)


def register(app: typer.Typer) -> None:
    app.command()(convert)


def convert(
    model: Optional[str] = typer.Argument(None, help="Model folder or hub id [default: the bundled models/default]"),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (written atomically)"),
    fmt: str = typer.Option("coreml", "--format", callback=one_of("--format", ("coreml", "coreai")),
                            help="coreml: .mlpackage for iOS 16+ / macOS 13+; coreai: .aimodel for iOS / macOS 27 "
                                 "(needs the [coreai] extra)"),
    layout: Optional[str] = typer.Option(None, "--layout", help="Map the UNet onto a layout: preset name or JSON file"),
    attention: AttentionImpl = typer.Option(AttentionImpl.SPLIT_EINSUM, "--attention", help="Attention implementation"),
    palettize: str = typer.Option("none", "--palettize",
                                  help="none, 4, 6, 8 or mixed:BITS for text encoder and UNet, or per component: "
                                       "text_encoder=8,unet=mixed:4.5"),
    palettize_mode: str = typer.Option("kmeans", "--palettize-mode", help="kmeans or uniform"),
    image_size: Optional[str] = typer.Option(None, "--image-size", callback=image_sizes_option,
                                             help="Pixels: SIDE or HEIGHTxWIDTH, e.g. 512x768, or a comma list of sizes "
                                                  "(512,512x768,768x512: one folder, one package function per size, "
                                                  "the first the default; iOS 18) [default: the model's]"),
    unet_batch: Optional[int] = typer.Option(None, "--unet-batch", callback=one_of("--unet-batch", (1, 2)),
                                             help="2 = guidance in one UNet call, 1 = two calls "
                                                  "[default: 1 where the default guidance runs no CFG batch, else 2]"),
    sampler: Optional[str] = sampler_option(),
    steps: Optional[int] = typer.Option(None, "--steps", callback=at_least(1, "--steps"),
                                        help="Sampling steps planned into pipeline.json [default: the model's]"),
    guidance: Optional[float] = typer.Option(None, "--guidance", callback=finite("--guidance"),
                                             help="Default guidance scale w recorded in pipeline.json (1 = none) "
                                                  "[default: the model's]"),
    eta: Optional[float] = eta_option(),
    target: Optional[Target] = typer.Option(None, "--target", help="Minimum deployment target "
                                            "[default: iOS16; iOS18 with several --image-size sizes]"),
    components: Optional[str] = typer.Option(None, "--components",
                                             help="Comma-separated from text_encoder, unet, decoder, encoder (the VAE "
                                                  "encoder of image to image) [default: every one the model has]"),
    chunk_unet: bool = typer.Option(False, "--chunk-unet", help="Split the UNet into two packages (after palettization)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder"),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow loading pickle (.bin/.ckpt) weights"),
    base: Optional[str] = typer.Option(None, "--base",
                                       help="Architecture of a single-file checkpoint: sd-v1, sd-v2 (768 px, v-prediction), "
                                            "sd-v2-base or a folder of diffusers config files"),
    lora: Optional[List[str]] = typer.Option(None, "--lora", help="LoRA safetensors FILE[:SCALE] merged into the UNet and "
                                             "text encoder before palettization (repeatable; SCALE default 1.0)"),
    as_json: bool = typer.Option(False, "--json", help="Print the result (files, sizes, sha256s) as JSON"),
) -> None:
    """Convert a text-to-image pipeline to Core ML packages (or Core AI assets) for iPhone, iPad and Mac."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..convert import ConvertOptions, convert_model

    compression, per_component = parse_palettize(palettize, palettize_mode)
    options = ConvertOptions(
        out=out, components=DEFAULT_COMPONENTS if components is None else parse_components(components),
        attention=attention, compression=compression, component_compression=per_component, image_size=image_size or None,
        unet_batch=unet_batch, target=None if target is None else target.value, chunk_unet=chunk_unet,
        overwrite=overwrite, layout=layout, allow_pickle=allow_pickle, base=base,
        loras=tuple(parse_lora_option(text) for text in lora or ()), sampler=sampler, steps=steps, guidance=guidance,
        eta=eta, format=fmt,
    )
    console = stderr_console()
    with ExitStack() as stack:  # the progress display opens with the first component
        tasks: dict[str, int] = {}

        def on_component(key: str, event: str) -> None:
            check_interrupted()
            if not tasks:
                tasks["progress"] = stack.enter_context(Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                                                 TimeElapsedColumn(), console=console))
            progress = tasks["progress"]
            if event == "start":
                tasks[key] = progress.add_task(f"converting {key}", total=1)
            else:
                progress.update(tasks[key], completed=1, description=f"converted {key}")

        summary = convert_model(model, options, on_component, _mixed_bit_recipe)
    _print_summary(summary, fmt, as_json, console)


def _mixed_bit_recipe(*args, **kwargs):
    """mixed_bits.mixed_bit_recipe, imported (with torch and coremltools) only when a mixed recipe runs."""
    from ..mixed_bits import mixed_bit_recipe

    return mixed_bit_recipe(*args, **kwargs)


def _print_summary(summary, fmt: str, as_json: bool, console) -> None:
    from rich.table import Table

    for report in summary.mapping:
        console.print(f"UNet layout mapping:\n{report}")
    if as_json:
        print_json({"out": str(summary.out), "format": fmt, "components": [
            {"component": r.key, "files": r.files, "size_bytes": r.size_bytes, "sha256": r.sha256,
             "compression": r.compression.to_dict(), "seconds": round(r.seconds, 3)} for r in summary.results]})
        return
    table = Table()
    for column in ("component", "files", "size", "compression", "time"):
        table.add_column(column)
    for r in summary.results:
        comp = r.compression
        text = "fp16" if comp.mode == "none" else f"{comp.bits}-bit {comp.method} ({comp.granularity})"
        table.add_row(r.key, ", ".join(r.files), human_bytes(r.size_bytes), text, f"{r.seconds:.1f} s")
    print_titled(stdout_console(), str(summary.out), table)
