"""`snapfusion-coreml export-blocks`: one Core ML package per UNet block + manifest.json, for the
Swift latency-table harness (docs/contracts.md section 5)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..assets import default_model_dir
from ..errors import check_interrupted
from ..io import claim_output
from ..modeling.attention_impl import AttentionImpl
from ..modeling.source import resolve_model_path
from .options import Target, at_least, human_bytes, image_size_option, print_json, print_titled, stderr_console, stdout_console


def register(app: typer.Typer) -> None:
    app.command("export-blocks")(export_blocks)


def export_blocks(
    model: Optional[str] = typer.Argument(None, help="Model folder or hub id [default: the bundled models/default]"),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder (written atomically, manifest.json last)"),
    layout: Optional[str] = typer.Option(None, "--layout", help="Map the UNet onto a layout: preset name or JSON file"),
    image_size: Optional[str] = typer.Option(None, "--image-size", callback=image_size_option,
                                             help="Pixels: SIDE or HEIGHTxWIDTH, e.g. 512x768 [default: the model's]"),
    batch: int = typer.Option(2, "--batch", callback=at_least(1, "--batch"), help="Batch of every block: 2 = guidance in one UNet call, 1 = two calls"),
    attention: AttentionImpl = typer.Option(AttentionImpl.SPLIT_EINSUM, "--attention", help="Attention implementation"),
    target: Target = typer.Option(Target.iOS16, "--target", help="Minimum deployment target"),
    blocks: Optional[str] = typer.Option(None, "--blocks", help="Comma-separated block names, e.g. "
                                         "down_blocks.1.attentions.0 [default: every block]"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder"),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow loading pickle (.bin/.ckpt) weights"),
    as_json: bool = typer.Option(False, "--json", help="Print the exported blocks as JSON"),
) -> None:
    """Export every UNet block as its own fp16 Core ML package, for on-device per-block latency tables."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    source = str(model or default_model_dir())
    resolve_model_path(source)  # a missing MODEL fails before torch is imported
    console = stderr_console()
    with claim_output(out, overwrite, inputs=[source, layout]):
        from ..convert.blocks import BlockExportOptions, export_blocks as run_export

        names = tuple(dict.fromkeys(n.strip() for n in (blocks or "").split(",") if n.strip()))
        options = BlockExportOptions(out=out, attention=attention, image_size=image_size, batch=batch,
                                     target=target.value, overwrite=overwrite, layout=layout, blocks=names,
                                     allow_pickle=allow_pickle)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as progress:
            task = progress.add_task("loading the model", total=None)

            def on_block(name: str, number: int, total: int) -> None:
                check_interrupted()
                progress.update(task, description=f"converting {name}", completed=number, total=total)

            summary = run_export(source, options, on_block)
            progress.update(task, description="exported blocks", completed=len(summary.results))
    for report in summary.mapping:
        console.print(f"UNet layout mapping:\n{report}")
    blocks_manifest = summary.blocks_manifest
    if as_json:
        print_json({"out": str(summary.out), "manifest": blocks_manifest.to_dict(), "blocks": [
            {"name": r.name, "kind": r.kind, "resolution": r.resolution, "in_channels": r.in_channels,
             "out_channels": r.out_channels, "size_bytes": r.size_bytes, "seconds": round(r.seconds, 3)}
            for r in summary.results]})
        return
    table = Table()
    table.add_column("block", no_wrap=True, min_width=len(max((r.name for r in summary.results), key=len, default="")))
    for column in ("kind", "resolution", "in -> out channels", "size", "time"):
        table.add_column(column, justify="right" if column in ("size", "time") else "left")
    for r in summary.results:
        table.add_row(r.name, r.kind, f"{r.resolution}x{r.resolution_width}", f"{r.in_channels} -> {r.out_channels}",
                      human_bytes(r.size_bytes), f"{r.seconds:.1f} s")
    stdout = stdout_console()
    print_titled(stdout, f"{summary.out}: {blocks_manifest.layout}, {summary.image} px, batch {options.batch}", table)
    stdout.print(f"{len(summary.results)} blocks, {human_bytes(sum(r.size_bytes for r in summary.results))}; "
                 f"time them on a Mac with: snapfusion-cli latency-table --blocks {summary.out}")
