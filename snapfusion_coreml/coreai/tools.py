"""Importing Apple's Core AI packages (the optional `[coreai]` extra) quietly, with one line
naming the extra when they are missing."""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from types import ModuleType

from ..errors import UserError
from ..optional import require

FORMATS = ("coreml", "coreai")  # pipeline.json `format`: which runtime a component's files are for
EXTRA = "coreai"
# Versions verified together on Linux x86_64 (pyproject.toml's [coreai] extra).
PACKAGES = {"coreai": "coreai-core", "coreai_torch": "coreai-torch", "coreai_opt": "coreai-opt"}


def require_coreai(module: str = "coreai", purpose: str = "Core AI (.aimodel) assets") -> ModuleType:
    """Import one of Apple's Core AI packages (coreai, coreai_torch, coreai_opt), or raise the
    one-line UserError naming the `[coreai]` extra. Their import-time notes (an untested torch
    version, torchao's optional GPU kernels) are kept off the console."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in ("torchao", "torch.utils._pytree", "coreai_opt", "coreai_torch", "coreai"):
            logging.getLogger(name).setLevel(logging.ERROR)
        return require(module, EXTRA, purpose)


def check_coreai_installed(purpose: str) -> None:
    """The one-line error naming the `[coreai]` extra when one of Apple's packages is missing,
    found without importing them (so a bad command line fails in well under a second)."""
    import importlib.util

    missing = [module for module in PACKAGES if importlib.util.find_spec(module) is None]
    if missing:
        raise UserError(f"expected the optional package {missing[0]!r} ({PACKAGES[missing[0]]}) for {purpose}, "
                        f"got none installed; install snapfusion-coreml[{EXTRA}]")


def kmeans_build_tools() -> None:
    """coreai-opt's 1-D k-means is a C++ extension torch builds on first use with ninja: put the
    ninja of the `ninja` package (a dependency of coreai-opt) on PATH when the shell has none, so a
    venv used without activating it still builds. A missing C++ compiler is one line."""
    if shutil.which("ninja") is None:
        try:
            import ninja

            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
        except ImportError:
            pass
    if shutil.which("c++") is None and shutil.which("g++") is None and shutil.which("clang++") is None:
        raise UserError("expected a C++ compiler (c++, g++ or clang++) on PATH for coreai-opt's k-means palettization, "
                        "got none; install one or convert with --palettize none")
