"""Option types and small formatting helpers shared by the CLI modules."""

from __future__ import annotations

import enum


class Target(str, enum.Enum):
    iOS16 = "iOS16"
    iOS17 = "iOS17"
    iOS18 = "iOS18"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
