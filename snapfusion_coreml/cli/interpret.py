"""`snapfusion-coreml interpret OUT`: serve a converted folder's packages over stdin/stdout."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from ..errors import UserError


def register(app: typer.Typer) -> None:
    app.command(name="interpret")(interpret_command)


def interpret_command(
    out: Path = typer.Argument(..., help="A folder written by `convert` (with pipeline.json)"),
    precision: str = typer.Option("fp16", "--precision", help="fp16 (round to the program's declared precision, as on device) or fp32"),
) -> None:
    """Run the packages with the Core ML program interpreter for a client on stdin/stdout.

    Protocol: docs/contracts.md section 8 (one JSON line + raw little-endian tensors per request
    and per answer). Logs go to stderr; exits 0 when stdin ends.
    """
    from ..interpreter.folder import FolderRunner
    from ..interpreter.server import StreamEnded, serve

    folder = FolderRunner(out, precision)
    # the protocol owns the real stdout; anything else printed (libraries included) goes to stderr
    stdout = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    log = lambda text: print(f"interpret: {text}", file=sys.stderr, flush=True)  # noqa: E731
    log(f"serving {', '.join(folder.components)} of {out} at {precision}")
    try:
        served = serve(folder, sys.stdin.buffer, stdout, log)
    except StreamEnded as exc:
        raise UserError(f"{exc} (stdin of interpret {out})") from None
    finally:
        stdout.flush()
    log(f"input ended after {served} requests")
