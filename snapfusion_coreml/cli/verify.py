"""`snapfusion-coreml verify`: run a converted folder's packages on Linux and compare with PyTorch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ..errors import UserError
from ..metrics import MIN_PSNR_DB


def register(app: typer.Typer) -> None:
    app.command(name="verify")(verify_command)


def verify_command(
    out: Path = typer.Argument(..., help="A folder written by `convert` (with pipeline.json)"),
    reference: Optional[str] = typer.Option(None, "--reference", help="PyTorch model to compare with [default: pipeline.json source.model]"),
    min_psnr: float = typer.Option(MIN_PSNR_DB, "--min-psnr", help="Pass threshold in dB"),
    modes: Optional[str] = typer.Option(None, "--modes", help="fp32, fp16 and/or coreml (macOS) [default: fp32,fp16, plus coreml on macOS]"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow the reference to load pickle (.bin/.ckpt) weights"),
) -> None:
    """Run every package with the Core ML program interpreter (and Core ML on macOS) against PyTorch.

    Exits 1 when an output is below --min-psnr, holds NaN/inf, or a package differs from its sha256.
    """
    os.environ.setdefault("TQDM_DISABLE", "1")
    from ..verify.check import parse_modes, verify_folder
    from ..verify.report import render

    err = Console(stderr=True)
    with err.status("verifying") as status:
        report = verify_folder(out, reference, min_psnr, parse_modes(modes),
                               on_step=lambda text: status.update(f"verifying {text}"), allow_pickle=allow_pickle)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        render(report, Console())
    if not report.ok:
        raise UserError(report.failure_message(), exit_code=1)
