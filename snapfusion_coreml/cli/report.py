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
        as_json: bool = typer.Option(False, "--json", help="Print the written files as JSON"),
    ) -> None:
        """Aggregate device benchmarks into a markdown table and a plot against published figures."""
        from ..report import write_report

        written = write_report(files, output)
        if as_json:
            print_json({"markdown": written.markdown, "plot": written.plot, "benchmarks": len(written.results)})
            return
        typer.echo(f"wrote {written.markdown} and {written.plot} ({len(written.results)} benchmark files)")
