"""`latency estimate`: parse options, call snapfusion_coreml.latency, print the (estimated) tables."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..modeling.diffusers_config import check_image_size_fits
from .options import at_least, finite, print_json, print_titled, sampler_option, stdout_console

latency_app = typer.Typer(help="Per-block latency tables (device measurements or cost-model estimates).",
                          no_args_is_help=True, rich_markup_mode=None)


@latency_app.command("estimate")
def estimate_command(
    model: Annotated[Optional[Path], typer.Argument(help="MODEL folder (configs are read, weights are not).")] = None,
    layout: Annotated[Optional[str], typer.Option(help="Layout preset or JSON instead of MODEL (e.g. sd-v1.5, snapfusion).")] = None,
    steps: Annotated[Optional[int], typer.Option(callback=at_least(1, "--steps"),
                                                 help="Sampling steps [default: the model's].")] = None,
    image_size: Annotated[Optional[int], typer.Option(callback=at_least(1, "--image-size"),
                                                      help="Image side in pixels [default: the model's].")] = None,
    sampler: Optional[str] = sampler_option(),
    guidance: Annotated[Optional[float], typer.Option("--guidance", callback=finite("--guidance"),
                                                      help="Guidance scale w (<= 1: no CFG pass) [default: the model's].")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the estimated latency table JSON here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON.")] = False,
) -> None:
    """Estimated iPhone 14 Pro latency: per-block table and end to end (text encoder + UNet calls + decoder)."""
    from ..errors import UserError
    from ..image_size import ImageSize
    from ..latency.cost_model import ESTIMATE_DEVICE_MODEL
    from ..latency.estimate import estimate, shapes_from_model, shapes_from_preset

    if (model is None) == (layout is None):
        raise UserError("expected exactly one of MODEL or --layout, got " + ("both" if model else "neither"))
    if image_size is not None:
        check_image_size_fits(ImageSize.square(image_size), model, layout)
    shapes = shapes_from_model(model) if model is not None else shapes_from_preset(layout)
    result, plan = estimate(shapes, steps, image_size, sampler, guidance)
    if as_json:
        print_json({"layout": shapes.layout.name, "estimated": True, "steps": result.steps, "sampler": plan.sampler,
                    "guidance": plan.guidance, "cfg": plan.cfg, "unet_batch": 2 if plan.cfg else 1,
                    "unet_calls": plan.unet_calls, "unet_evaluations": plan.unet_evaluations,
                    "image_size": image_size or shapes.defaults.image_size,
                    "device_model": ESTIMATE_DEVICE_MODEL,
                    "unet_step_ms": result.unet_step_ms, "unet_other_ms": result.unet_other_ms,
                    "text_encoder_ms": result.text_encoder_ms, "text_encoder_runs": result.text_encoder_runs,
                    "decoder_ms": result.decoder_ms, "end_to_end_ms": result.end_to_end_ms,
                    "blocks": result.table.to_dict()})
    else:
        _print_estimate(shapes, result, plan, image_size)
    if out is not None:
        result.table.save(out)
        print(f"wrote {out} (estimated=true)", file=sys.stderr if as_json else sys.stdout)


def _print_estimate(shapes, result, plan, image_size: Optional[int]) -> None:
    from rich.table import Table

    title = (f"{shapes.layout.name}: ESTIMATED per-block latency, iPhone 14 Pro (cost model), "
             f"UNet batch {result.table.entries[0].batch if result.table.entries else 2}")
    table = Table()
    table.add_column("block", no_wrap=True, min_width=30)
    for column in ("kind", "resolution", "in -> out channels", "est. ms"):
        table.add_column(column, justify="right" if column == "est. ms" else "left")
    for entry in result.table.entries:
        table.add_row(entry.name, entry.kind, f"{entry.resolution}x{entry.resolution}",
                      f"{entry.in_channels} -> {entry.channels}", f"{entry.p50_ms:.2f}")
    console = stdout_console()
    print_titled(console, title, table)
    console.print(f"estimated UNet per call: {result.unet_step_ms:.1f} ms (blocks {result.table.total_ms():.1f} + "
                  f"other {result.unet_other_ms:.1f})", highlight=False)
    console.print(f"{plan.sampler}, {plan.steps} steps, guidance {plan.guidance:g}: {plan.unet_calls} UNet calls "
                  f"({plan.unet_evaluations} evaluations) per image", highlight=False)
    console.print(f"estimated text encoder: {result.text_encoder_ms:.1f} ms x {result.text_encoder_runs}; "
                  f"estimated decoder: {result.decoder_ms:.1f} ms", highlight=False)
    console.print(f"estimated end to end ({result.steps} steps, {image_size or shapes.defaults.image_size} px): "
                  f"{result.end_to_end_ms / 1000:.2f} s  (estimate: cost model calibrated on published iPhone 14 Pro numbers)",
                  highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(latency_app, name="latency")
