"""Run the CLI in-process as a user would: argv in, exit code and output out."""

from __future__ import annotations

import sys

import pytest


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from snapfusion_coreml.cli import main

    old = sys.argv
    sys.argv = ["snapfusion-coreml", *argv]
    try:
        with pytest.raises(SystemExit) as info:
            main()
            sys.exit(0)
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err
