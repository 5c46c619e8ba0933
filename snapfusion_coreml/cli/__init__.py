"""The `snapfusion-coreml` command line. Each module in COMMAND_MODULES registers its commands;
commands only parse options and call library functions.

Exit codes (README "Exit codes and scripting"): 0 success, 1 a check failed (`verify`), 2 bad
input (one line "error: ..."), 130 interrupted by SIGINT, 143 stopped by SIGTERM; an interrupted
run removes its temporary output and leaves OUT as it was. Importing this package does not import
torch, so `--help` and `--version` answer at once.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import warnings

# coremltools reports its passes with tqdm, which reads this once at import: our own rich
# progress bars replace them.
os.environ.setdefault("TQDM_DISABLE", "1")

import typer

from .. import __version__
from ..errors import Interrupted, UserError, check_interrupted, interrupt

app = typer.Typer(
    name="snapfusion-coreml",
    help="SnapFusion-style text-to-image for iPhones: train, convert to Core ML, verify.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # help text is printed as written ("[default: ...]" stays)
)

# click's usage-error base class (typer vendors click in newer releases, so it is found, not imported)
_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

# Each module defines `register(app)`.
COMMAND_MODULES = ("convert", "inspect", "verify", "generate", "export_blocks", "train", "latency", "report",
                   "interpret", "eval")

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def _show_version(value: bool) -> None:
    if value:
        print(f"snapfusion-coreml {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global_options(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                 help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", help="Show third-party warnings and log lines."),
) -> None:
    """SnapFusion-style text-to-image for iPhones: train, convert to Core ML, verify."""
    quiet_third_parties(not verbose)
    results_only_on_stdout()


def results_only_on_stdout() -> None:
    """Progress bars and notes drawn on rich's default console (training loops) go to stderr, so
    stdout holds only a command's result (`--json` output stays parseable)."""
    import rich

    rich.reconfigure(stderr=True)


def quiet_third_parties(quiet: bool) -> None:
    """Silence warnings and log lines of the libraries we call (transformers, coremltools, torch)."""
    if not quiet:
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers is first imported
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if "transformers" in sys.modules:  # already imported (a Python caller of main)
        sys.modules["transformers"].utils.logging.set_verbosity_error()
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    # torch's loggers keep their own level: where torchao is installed (coreai-opt needs it) and
    # transformers imports it, its enum registration warns through this one on every run
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)


def _on_signal(signum: int, frame) -> None:
    interrupt(signum)


def _print_error(message: str) -> None:
    """One line on stderr, printed literally (paths and shape lists in brackets survive)."""
    text = " ".join(message.split("\n"))
    if sys.stderr.isatty():
        sys.stderr.write(f"\033[31merror:\033[0m {text}\n")
    else:
        sys.stderr.write(f"error: {text}\n")
    sys.stderr.flush()


def _interrupted_line(signum: int) -> str:
    from ..io import CLAIMED_OUTPUTS, WRITTEN_OUTPUTS

    what = "interrupted" if signum == signal.SIGINT else "terminated"
    if not CLAIMED_OUTPUTS:
        return f"{what}; nothing was written"
    untouched = [str(p) for p in CLAIMED_OUTPUTS if p not in WRITTEN_OUTPUTS]
    written = [str(p) for p in WRITTEN_OUTPUTS]
    return "; ".join([what] + ([f"{', '.join(untouched)} untouched"] if untouched else [])
                     + ([f"{', '.join(written)} was already complete"] if written else []))


def _stop(signum: int) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):  # a second signal must not cut the last line short
        signal.signal(sig, signal.SIG_IGN)
    sys.stderr.write(_interrupted_line(signum) + "\n")
    sys.stderr.flush()
    sys.exit(128 + signum)


def main() -> None:
    """Entry point: one line per error, and the exit codes of the module docstring."""
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _run()
    finally:  # a Python caller (a test) gets its own handlers back
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run() -> None:
    try:
        code = app(standalone_mode=False)
    except UserError as exc:
        _print_error(str(exc))
        sys.exit(exc.exit_code)
    except Interrupted as exc:
        _stop(exc.signum)
    except (KeyboardInterrupt, typer.Abort):
        _stop(signal.SIGINT)
    except _USAGE_ERROR as exc:  # usage errors: bad option values, missing arguments
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as click prints it
            sys.stderr.write(exc.format_message() + "\n")
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        _print_error(f"{exc.format_message()}{hint}")
        sys.exit(exc.exit_code)
    except OSError as exc:  # the filesystem outside an output folder: a read-only or full disk
        from ..io import os_error

        _print_error(str(os_error(exc, exc.filename or "the output")))
        sys.exit(2)
    if code == 130:  # typer turns a KeyboardInterrupt it catches into this code
        _stop(signal.SIGINT)
    try:
        check_interrupted()  # a signal whose exception was swallowed: the run still reads as stopped
    except Interrupted as exc:
        _stop(exc.signum)
    sys.exit(code or 0)
