"""`snapfusion-coreml verify`: run a converted folder's packages on Linux and compare with PyTorch."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from ..errors import UserError, check_interrupted
from .options import finite, print_json, stderr_console, stdout_console


def register(app: typer.Typer) -> None:
    app.command(name="verify")(verify_command)


def verify_command(
    out: Path = typer.Argument(..., help="A folder written by `convert` (with pipeline.json)"),
    reference: Optional[str] = typer.Option(None, "--reference", help="PyTorch model to compare with [default: pipeline.json source.model]"),
    min_psnr: Optional[float] = typer.Option(None, "--min-psnr", callback=finite("--min-psnr"),
                                             help="Pass threshold in dB [default: 35, Apple's bar]"),
    modes: Optional[str] = typer.Option(None, "--modes", help="fp32, fp16 and/or coreml (macOS) [default: fp32,fp16, plus coreml on macOS]; "
                                                               "coreai for a Core AI folder (its only mode)"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
    allow_pickle: bool = typer.Option(False, "--allow-pickle", help="Allow the reference to load pickle (.bin/.ckpt) weights"),
) -> None:
    """Run every package with the Core ML program interpreter (and Core ML on macOS) against PyTorch;
    a Core AI folder's .aimodel assets run in Apple's Core AI runtime.

    Exits 1 when an output is below --min-psnr, holds NaN/inf, or a package differs from its sha256
    or from the inputs and outputs pipeline.json declares for it.
    """
    os.environ.setdefault("TQDM_DISABLE", "1")
    from ..metrics import MIN_PSNR_DB
    from ..verify.check import parse_modes, verify_folder
    from ..verify.report import render

    with stderr_console().status("verifying") as status:
        report = verify_folder(out, reference, MIN_PSNR_DB if min_psnr is None else min_psnr, parse_modes(modes),
                               on_step=lambda text: (check_interrupted(), status.update(f"verifying {text}")),
                               allow_pickle=allow_pickle)
    if as_json:
        print_json(report.to_dict())
    else:
        render(report, stdout_console())
    if not report.ok:
        raise UserError(report.failure_message(), exit_code=1)
