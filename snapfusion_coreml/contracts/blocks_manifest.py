"""manifest.json, the blocks manifest of an `export-blocks` folder (docs/contracts.md section 5),
as frozen records: written by convert/blocks.py, read by the Swift latency-table harness
(ios_app/Sources/SnapFusionKit/Benchmark/BlocksManifest.swift) and by `BlocksManifest.read`.

    blocks_manifest = BlocksManifest.read(folder)     # one UserError line for any bad value
    [(b.package, b.kind, b.inputs[0].shape) for b in blocks_manifest.blocks]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import BLOCK_KINDS, block_name
from ..errors import UserError, expected
from ..io import write_json
from ..json_fields import JsonFields, read_json
from .pipeline_json import TensorSpec

BLOCKS_MANIFEST_JSON = "manifest.json"
BLOCKS_MANIFEST_FORMAT = "snapfusion-block-manifest"
BLOCKS_MANIFEST_VERSION = 1


@dataclass(frozen=True)
class BlockEntry:
    """One single-block package; `index` counts blocks of its kind inside the stage, `resolution`
    is the latent height it runs at (the declared shapes carry both sides)."""

    stage: str
    index: int
    kind: str  # BLOCK_KINDS
    resolution: int
    channels: int  # output channels
    in_channels: int
    batch: int
    package: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def name(self) -> str:
        """The block's module name in the UNet, e.g. down_blocks.1.attentions.0."""
        return block_name(self.stage, self.kind, self.index)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "index": self.index, "kind": self.kind, "resolution": self.resolution,
                "channels": self.channels, "in_channels": self.in_channels, "batch": self.batch,
                "package": self.package, "inputs": [t.to_dict() for t in self.inputs],
                "outputs": [t.to_dict() for t in self.outputs]}

    @classmethod
    def from_fields(cls, f: JsonFields) -> "BlockEntry":
        return cls(f.string("stage"), f.integer("index", minimum=0), f.string("kind", BLOCK_KINDS),
                   f.integer("resolution", minimum=1), f.integer("channels", minimum=1),
                   f.integer("in_channels", minimum=1), f.integer("batch", minimum=1), f.string("package"),
                   tuple(TensorSpec.from_fields(t) for t in f.objects("inputs")),
                   tuple(TensorSpec.from_fields(t) for t in f.objects("outputs")))


@dataclass(frozen=True)
class BlocksManifest:
    """The whole of manifest.json (format snapfusion-block-manifest, version 1)."""

    layout: str
    image_size: int  # the image height in pixels (its side for square images)
    blocks: tuple[BlockEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"format": BLOCKS_MANIFEST_FORMAT, "version": BLOCKS_MANIFEST_VERSION, "layout": self.layout,
                "image_size": self.image_size, "blocks": [b.to_dict() for b in self.blocks]}

    @classmethod
    def from_dict(cls, data: Any, source: str = BLOCKS_MANIFEST_JSON) -> "BlocksManifest":
        """Check and read a blocks manifest object; `source` names the file in errors."""
        top = JsonFields(data, "", source)
        form = (top.raw("format", None), top.raw("version", None))
        if form != (BLOCKS_MANIFEST_FORMAT, BLOCKS_MANIFEST_VERSION):
            raise expected(f"format {BLOCKS_MANIFEST_FORMAT} version {BLOCKS_MANIFEST_VERSION}",
                           f"format {form[0]!r} version {form[1]!r}", source)
        return cls(top.string("layout"), top.integer("image_size", minimum=1),
                   tuple(BlockEntry.from_fields(b) for b in top.objects("blocks")))

    @classmethod
    def read(cls, folder: Path | str) -> "BlocksManifest":
        """FOLDER/manifest.json, checked, and every package it lists present."""
        path = Path(folder) / BLOCKS_MANIFEST_JSON
        if not path.is_file():
            raise UserError(f"expected {BLOCKS_MANIFEST_JSON} in {folder} (a folder written by export-blocks), found none")
        blocks_manifest = cls.from_dict(read_json(path, "the blocks manifest"), str(path))
        for block in blocks_manifest.blocks:
            if not (Path(folder) / block.package).is_dir():
                raise expected(f"package {block.package} (listed in {BLOCKS_MANIFEST_JSON})", "no such package", str(folder))
        return blocks_manifest

    def write(self, folder: Path | str) -> Path:
        """FOLDER/manifest.json, written atomically; its path."""
        path = Path(folder) / BLOCKS_MANIFEST_JSON
        write_json(path, self.to_dict())
        return path
