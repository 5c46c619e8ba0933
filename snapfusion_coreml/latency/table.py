"""The latency table format of docs/contracts.md section 4: read, write, look up."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import block_name
from ..errors import UserError
from ..io import write_json
from ..json_fields import read_json

LATENCY_FORMAT = "snapfusion-latency-table"


@dataclass(frozen=True)
class LatencyEntry:
    stage: str  # e.g. "up_blocks.1"
    index: int  # among the stage's blocks of this kind
    kind: str  # "resnet" | "transformer"
    resolution: int  # latent side the block runs at
    channels: int
    in_channels: int
    batch: int
    p50_ms: float
    p95_ms: float

    @property
    def name(self) -> str:
        return block_name(self.stage, self.kind, self.index)


@dataclass(frozen=True)
class LatencyTable:
    entries: tuple[LatencyEntry, ...]
    device: dict[str, str] = field(default_factory=dict)  # model, os, compute_units
    estimated: bool = False  # True for cost-model tables: label every number as an estimate
    layout: str = ""
    image_size: int = 512
    tool_version: str = ""

    def by_name(self) -> dict[str, LatencyEntry]:
        return {e.name: e for e in self.entries}

    def lookup(self, stage: str, kind: str, index: int) -> LatencyEntry | None:
        """The entry of this block, else the median entry of the same kind in the same stage."""
        exact = self.by_name().get(block_name(stage, kind, index))
        if exact is not None:
            return exact
        same = sorted((e for e in self.entries if e.stage == stage and e.kind == kind), key=lambda e: e.p50_ms)
        return same[len(same) // 2] if same else None

    def total_ms(self) -> float:
        return sum(e.p50_ms for e in self.entries)

    def to_dict(self) -> dict[str, Any]:
        from .. import __version__

        return {
            "format": LATENCY_FORMAT,
            "version": 1,
            "tool_version": self.tool_version or __version__,
            "estimated": self.estimated,
            "device": dict(self.device),
            "layout": self.layout,
            "image_size": self.image_size,
            "entries": [asdict(e) for e in self.entries],
        }

    def save(self, path: Path) -> None:
        write_json(Path(path), self.to_dict())


def load_latency_table(path: Path) -> LatencyTable:
    """Read a latency table JSON written by the Swift harness or by `latency estimate`."""
    path = Path(path)
    data = read_json(path, "a latency table JSON file")
    if data.get("format") != LATENCY_FORMAT or data.get("version") != 1:
        raise UserError(f"expected format {LATENCY_FORMAT!r} version 1, got {data.get('format')!r} version {data.get('version')!r} (in {path})")
    try:
        entries = tuple(
            LatencyEntry(
                stage=str(e["stage"]), index=int(e["index"]), kind=str(e["kind"]), resolution=int(e["resolution"]),
                channels=int(e["channels"]), in_channels=int(e.get("in_channels", e["channels"])), batch=int(e["batch"]),
                p50_ms=float(e["p50_ms"]), p95_ms=float(e["p95_ms"]),
            )
            for e in data["entries"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"malformed latency table entry: {exc} (in {path})") from None
    bad = [e.kind for e in entries if e.kind not in ("resnet", "transformer")]
    if bad:
        raise UserError(f"expected block kind resnet or transformer, got {bad[0]!r} (in {path})")
    return LatencyTable(entries, dict(data.get("device", {})), bool(data.get("estimated", False)),
                        str(data.get("layout", "")), int(data.get("image_size", 512)), str(data.get("tool_version", "")))
