"""The `snapfusion-coreml` command line. Each module in COMMAND_MODULES registers its commands;
commands only parse options and call library functions.

Exit codes (README "Exit codes and scripting"): 0 success, 1 a check failed (`verify`), 2 bad
input (one line "error: ..."), 130 interrupted by SIGINT, 143 stopped by SIGTERM; an interrupted
run removes its temporary output and leaves OUT as it was. Importing this package does not import
torch, so `--help` and `--version` answer at once.

Every parameter of every command that names an existing file or folder, except the outputs in
OUTPUT_PARAMS and the free text in TEXT_PARAMS, is declared an input before the command runs
(`io.declare_inputs`): no output may be, hold or lie inside it, whichever option named it.
"""

from __future__ import annotations

import enum
import functools
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

# Parameter names of what a command writes, and of free text that is never a path; every other
# parameter naming an existing path is an input.
OUTPUT_PARAMS = frozenset({"out", "output", "run_dir"})
TEXT_PARAMS = frozenset({"prompt", "negative_prompt"})


def input_paths(params: dict) -> list:
    """The values of `params` (a command's parsed parameters) that may name input files or folders."""
    values = []
    for name, value in params.items():
        if name in OUTPUT_PARAMS or name in TEXT_PARAMS:
            continue
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(item, (str, os.PathLike)) and not isinstance(item, enum.Enum):
                values.append(item)
    return values


def check_text(params: dict) -> None:
    """Free text (a prompt) must be UTF-8: bytes that are not arrive as lone surrogates, which no
    tokenizer or JSON file can hold."""
    for name in TEXT_PARAMS & params.keys():
        value = params[name]
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise UserError(f"expected --{name.replace('_', '-')} as UTF-8 text, got bytes that are not UTF-8 "
                                f"at character {exc.start}") from None


def _declaring_inputs(callback):
    @functools.wraps(callback)
    def run(*args, **params):
        from ..io import declare_inputs

        check_text(params)
        declare_inputs(input_paths(params))
        return callback(*args, **params)

    return run


def command_tree():
    """The click command of `app` with every command's callback declaring its inputs first."""
    root = typer.main.get_command(app)
    stack = [root]
    while stack:
        command = stack.pop()
        if command.callback is not None:
            command.callback = _declaring_inputs(command.callback)
        stack.extend(getattr(command, "commands", {}).values())
    return root


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
    # torch's own loggers (their handler ignores the root level): errors only, read at torch's import;
    # e.g. torchao, pulled in by coreai-opt, registers pytree nodes with a warning each
    os.environ.setdefault("TORCH_LOGS", "-all")
    if "transformers" in sys.modules:  # already imported (a Python caller of main)
        sys.modules["transformers"].utils.logging.set_verbosity_error()
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)  # where torch was imported before TORCH_LOGS was set


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


def _unraisable(info) -> None:
    """A signal that lands in a finalizer (`__del__`) cannot stop it there; Python would print a
    traceback. It is remembered (errors.interrupt) and stops the run at the next safe point."""
    if not isinstance(info.exc_value, Interrupted):
        sys.__unraisablehook__(info)


def main() -> None:
    """Entry point: one line per error, and the exit codes of the module docstring."""
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    hook, sys.unraisablehook = sys.unraisablehook, _unraisable
    try:
        _run()
    finally:  # a Python caller (a test) gets its own handlers back
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.unraisablehook = hook


def _run() -> None:
    from ..io import DECLARED_INPUTS, process_temp_folder

    DECLARED_INPUTS.clear()  # a Python caller may run several commands in one process
    try:
        with process_temp_folder():
            code = command_tree()(standalone_mode=False)
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
