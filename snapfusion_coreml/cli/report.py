"""`snapfusion-coreml report`: device benchmark JSON files -> markdown table and plot."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        files: list[Path] = typer.Argument(..., help="benchmark JSON files written by `snapfusion-cli benchmark` or the app"),
        output: Path = typer.Option(..., "-o", "--output", help="folder for report.md and report.png"),
    ) -> None:
        """Aggregate device benchmarks into a markdown table and a plot against published figures."""
        from ..report import write_report

        written = write_report(files, output)
        typer.echo(f"wrote {written.markdown} and {written.plot} ({len(written.results)} benchmark files)")
