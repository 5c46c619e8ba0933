"""`snapfusion-coreml report`: device benchmark JSON files -> markdown table and plot."""

from __future__ import annotations

from pathlib import Path

import typer

from .options import print_json


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        files: list[Path] = typer.Argument(..., help="benchmark JSON files written by `snapfusion-cli benchmark` or the app"),
        output: Path = typer.Option(..., "-o", "--output", help="folder for report.md and report.png"),
        estimate: list[Path] = typer.Option([], "--estimate", help="JSON printed by `latency estimate --json` to set "
                                            "next to the device numbers (repeatable); differences in device, steps, "
                                            "size or batch are named"),
        as_json: bool = typer.Option(False, "--json", help="Print the written files as JSON"),
    ) -> None:
        """Aggregate device benchmarks into a markdown table and a plot against published figures."""
        from ..device_benchmark.report import write_report

        written = write_report(files, output, estimate)
        if as_json:
            print_json({"markdown": written.markdown, "plot": written.plot, "benchmarks": len(written.results),
                        "estimates": len(written.estimates)})
            return
        extra = f", {len(written.estimates)} estimates" if written.estimates else ""
        typer.echo(f"wrote {written.markdown} and {written.plot} ({len(written.results)} benchmark files{extra})")
