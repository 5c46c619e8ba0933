"""Optional dependencies: imported where a feature needs them, with one line naming the extra.

The main install (convert, verify, inspect, generate, latency) needs none of them; pyproject.toml
groups them as extras: `train` (accelerate, diffusers), `report` (matplotlib), `bench` (psutil),
`clip` (open_clip_torch), `coreai` (Apple's coreai-core, coreai-torch, coreai-opt: coreai/tools.py).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import UserError


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import `module`, or raise a UserError telling which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"expected the optional package {module!r} for {purpose}, got none installed; "
                        f"install snapfusion-coreml[{extra}]") from None
