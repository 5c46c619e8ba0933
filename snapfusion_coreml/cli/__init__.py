"""The `snapfusion-coreml` command line. Each module in COMMAND_MODULES registers its commands;
commands only parse options and call library functions."""

from __future__ import annotations

import importlib
import os
import sys

# coremltools reports its passes with tqdm, which reads this once at import: our own rich
# progress bars replace them.
os.environ.setdefault("TQDM_DISABLE", "1")

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import UserError

app = typer.Typer(
    name="snapfusion-coreml",
    help="SnapFusion-style text-to-image for iPhones: train, convert to Core ML, verify.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each module defines `register(app)`.
COMMAND_MODULES = ("convert", "inspect", "verify", "generate", "export_blocks", "train", "latency", "report")

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main() -> None:
    """Entry point: user errors become one red line and a non-zero exit, Ctrl-C exits 130."""
    err = Console(stderr=True)
    try:
        app(standalone_mode=False)
    except UserError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)  # "[train]" is text
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        err.print("[red]interrupted[/red]: nothing was written", highlight=False)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: bad option values, missing arguments
        exc.show()
        sys.exit(getattr(exc, "exit_code", 2))
