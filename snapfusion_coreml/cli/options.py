"""Option types, checks and output helpers shared by the CLI modules.

The checks are typer callbacks: they run while the command line is parsed, before any model is
loaded or torch is imported, so bad input fails in well under a second:

    steps: Optional[int] = typer.Option(None, "--steps", callback=at_least(1, "--steps"))
    seed: int = typer.Option(0, "--seed", callback=seed_in_range("--seed"))
    min_psnr: float = typer.Option(35.0, "--min-psnr", callback=finite("--min-psnr"))
"""

from __future__ import annotations

import enum
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from ..coreml.tools import TARGETS
from ..errors import UserError

SEED_MAX = 2**64 - 1  # torch.Generator.manual_seed takes 64-bit seeds; the Swift RNG reproduces them
UNLIMITED_WIDTH = 10_000  # columns when stdout is not a terminal: tables widen instead of being cut


Target = enum.Enum("Target", {name: name for name in TARGETS}, type=str)  # --target: coreml/tools.TARGETS


def at_least(minimum: int, name: str) -> Callable[[Optional[int]], Optional[int]]:
    """A callback refusing integers below `minimum` (None, "the default", passes)."""

    def check(value: Optional[int]) -> Optional[int]:
        if value is not None and value < minimum:
            raise UserError(f"expected {name} >= {minimum}, got {value}")
        return value

    return check


def seed_in_range(name: str) -> Callable[[Optional[int]], Optional[int]]:
    """A callback refusing seeds outside 0..2**64-1."""

    def check(value: Optional[int]) -> Optional[int]:
        if value is not None and not 0 <= value <= SEED_MAX:
            raise UserError(f"expected {name} in 0..{SEED_MAX} (2**64-1), got {value}")
        return value

    return check


def finite(name: str, minimum: float | None = None) -> Callable[[Optional[float]], Optional[float]]:
    """A callback refusing NaN and infinities (and values below `minimum` when given)."""

    def check(value: Optional[float]) -> Optional[float]:
        if value is None:
            return value
        if not math.isfinite(value):
            raise UserError(f"expected a finite number for {name}, got {value}")
        if minimum is not None and value < minimum:
            raise UserError(f"expected {name} >= {minimum:g}, got {value:g}")
        return value

    return check


def one_of(name: str, choices: tuple) -> Callable[[Any], Any]:
    """A callback refusing values (strings or integers) outside `choices`."""

    def check(value: Any) -> Any:
        if value is not None and value not in choices:
            listed = ", ".join(map(str, choices))
            raise UserError(f"expected {name} {' or '.join(listed.rsplit(', ', 1))}, got {value!r}")
        return value

    return check


def sampler_option():
    """--sampler, shared by convert and generate (samplers/settings.py lists the names)."""
    from ..samplers.settings import SAMPLER_NAMES

    return typer.Option(None, "--sampler", callback=one_of("--sampler", SAMPLER_NAMES),
                        help=f"{', '.join(SAMPLER_NAMES)} [default: the one the model's scheduler config names]")


def eta_option():
    """--eta: TCD's gamma (its stochasticity), shared by convert and generate."""
    return typer.Option(None, "--eta", callback=finite("--eta", 0.0),
                        help="tcd only: gamma in [0, 1] [default: 0.3, the TCD authors' value]")


def stdout_console():
    """The console for results: user text is printed literally (no markup), and when stdout is no
    terminal (a pipe, a CI log) nothing is cut at 80 columns."""
    from rich.console import Console

    return Console(markup=False, highlight=False, width=None if sys.stdout.isatty() else UNLIMITED_WIDTH)


def stderr_console():
    """The console for progress and notes, on stderr, printing user text literally."""
    from rich.console import Console

    return Console(stderr=True, markup=False, highlight=False,
                   width=None if sys.stderr.isatty() else UNLIMITED_WIDTH)


def print_titled(console, title: str, table) -> None:
    """A heading line, printed literally and never wrapped into the table's width, then the table."""
    from rich.text import Text

    console.print(Text(title))
    console.print(table)


def json_ready(value: Any) -> Any:
    """`value` with every non-finite float replaced by None, so the output is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def print_json(data: Any) -> None:
    """Print a result as strict JSON on stdout (NaN and inf become null)."""
    print(json.dumps(json_ready(data), indent=2, allow_nan=False))


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def image_size_option(value: Optional[str]):
    """--image-size SIDE or HEIGHTxWIDTH -> image_size.ImageSize, refused in one line before anything loads."""
    from ..image_size import parse_image_size

    return parse_image_size(value)


def image_sizes_option(value: Optional[str]):
    """convert's --image-size SIZE[,SIZE...] -> a tuple of image_size.ImageSize (the default first),
    refused in one line before anything loads (a malformed entry, a size given twice)."""
    from ..image_size import parse_image_sizes

    return parse_image_sizes(value)


