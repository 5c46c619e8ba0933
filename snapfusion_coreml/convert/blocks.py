"""One small Core ML package per UNet block, for on-device per-block latency tables.

`export-blocks` writes the folder of docs/contracts.md section 5: `{block name}.mlpackage` for
every block of the layout (or the --blocks subset), each at its stage's resolution, and
`manifest.json` (the blocks manifest, snapfusion_coreml/contracts/blocks_manifest.py) last. The Swift
harness (`snapfusion-cli latency-table`) times every package and
writes the latency table of section 4, which `evolve` and the cost model read. Every block goes
through the same trace -> convert step as the whole components (recipe.to_coreml), fp16.

Block inputs (B = batch, h, w = image height, width / 8 / 2**level):
  resnet       hidden_states (B, in_channels, h, w), temb (B, time_embed_dim)
  transformer  hidden_states (B, C, h, w), encoder_hidden_states (B, D, 1, 77)
and the one output `output` (B, out_channels, h, w).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import __version__
from ..config import RESNET, BlockSpec
from ..contracts.blocks_manifest import BlockEntry, BlocksManifest
from ..contracts.pipeline_json import TensorSpec
from ..coreml.features import describe_features
from ..coreml.tools import TARGETS
from ..digests import dir_size
from ..errors import UserError
from ..image_size import VAE_FACTOR, ImageSize, parse_image_size
from ..io import atomic_directory
from ..modeling.attention import AttentionImpl
from ..modeling.unet import SnapFusionUNet
from ..pipeline import Pipeline
from ..tokenizer import MAX_LENGTH
from .components import ComponentSpec
from .options import ConvertOptions
from .package import save_package
from .pipeline import open_model
from .recipe import to_coreml

BLOCK_OUTPUT = "output"


@dataclass(frozen=True)
class BlockExportOptions:
    out: Path
    attention: AttentionImpl = AttentionImpl.SPLIT_EINSUM
    image_size: ImageSize | None = None  # default: the model's (an int is read as a square)
    batch: int = 2  # the UNet batch the app runs (2: guidance in one call)
    target: str = "iOS16"
    overwrite: bool = False
    layout: str | None = None  # preset name or layout JSON path the UNet is mapped onto
    blocks: tuple[str, ...] = ()  # block names (BlockSpec.name) to export; empty: all
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "attention", AttentionImpl(self.attention))
        if isinstance(self.image_size, (int, str)):
            object.__setattr__(self, "image_size", parse_image_size(self.image_size))
        if self.target not in TARGETS:
            raise UserError(f"expected --target one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.batch not in (1, 2):
            raise UserError(f"expected --batch 1 or 2 (the UNet batch), got {self.batch}")

    def convert_options(self) -> ConvertOptions:
        """The same settings as `convert` takes them (what recipe.to_coreml reads)."""
        return ConvertOptions(out=self.out, components=("unet",), attention=self.attention, image_size=self.image_size,
                              unet_batch=self.batch, target=self.target, overwrite=self.overwrite, layout=self.layout,
                              allow_pickle=self.allow_pickle)


@dataclass
class BlockResult:
    name: str
    kind: str
    resolution: int
    in_channels: int
    out_channels: int
    seconds: float
    size_bytes: int
    resolution_width: int = 0  # the latent width (resolution is the height)


@dataclass
class BlockExportSummary:
    out: Path
    blocks_manifest: BlocksManifest
    results: list[BlockResult]
    mapping: list[str] = field(default_factory=list)
    image: ImageSize | None = None  # the image size the blocks were exported for


def select_blocks(plan: list[BlockSpec], names: tuple[str, ...]) -> list[BlockSpec]:
    """The blocks named in `names` (all when empty), in execution order."""
    if not names:
        return list(plan)
    known = {spec.name for spec in plan}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UserError(f"unknown block {unknown[0]!r} in --blocks; expected names of this layout's blocks: "
                        f"{', '.join(spec.name for spec in plan)}")
    wanted = set(names)
    return [spec for spec in plan if spec.name in wanted]


def block_component(unet: SnapFusionUNet, spec: BlockSpec, latent: tuple[int, int], batch: int) -> ComponentSpec:
    """The export description of one block: its module of the UNet and its input tensors
    (latent: the UNet's latent (height, width))."""
    layout = unet.layout
    height, width = (side // 2 ** spec.level for side in latent)
    hidden = TensorSpec("hidden_states", (batch, spec.in_channels, height, width))
    if spec.kind == RESNET:
        second = TensorSpec("temb", (batch, layout.time_embed_dim))
    else:
        second = TensorSpec("encoder_hidden_states", (batch, layout.cross_attention_dim, 1, MAX_LENGTH))
    # ResnetBlock.forward(x, temb) and TransformerBlock.forward(x, context) take the inputs in this order
    return ComponentSpec(spec.name, f"{spec.name}.mlpackage", unet.get_submodule(spec.name), (hidden, second),
                         (BLOCK_OUTPUT,), compress=False,
                         attention=None if spec.kind == RESNET else unet.attention.value)


def block_entry(spec: BlockSpec, component: ComponentSpec, batch: int) -> BlockEntry:
    """One block of the blocks manifest (docs/contracts.md section 5); `resolution` is the latent
    height the block runs at (its side for square images)."""
    height, width = component.inputs[0].shape[-2:]
    output = TensorSpec(BLOCK_OUTPUT, (batch, spec.out_channels, height, width))
    return BlockEntry(spec.stage, spec.index, spec.kind, height, spec.out_channels, spec.in_channels, batch,
                      component.file, tuple(component.inputs), (output,))


def export_blocks(model: str | Path | Pipeline, options: BlockExportOptions,
                  on_block: Callable[[str, int, int], None] | None = None) -> BlockExportSummary:
    """Export MODEL's UNet blocks into options.out, atomically; returns the blocks manifest and per-block facts.

    on_block(name, number, total) is called before block `number` (0-based) of `total` is converted.
    """
    convert_options = options.convert_options()
    mapping: list[str] = []
    with atomic_directory(Path(options.out), options.overwrite) as tmp:  # refuses an existing OUT before any work
        # 1. open the model and check the image size, then load the UNet alone (mapped onto --layout if given)
        source, latent = open_model(model, convert_options, mapping)
        unet = source.load("unet")
        selected = select_blocks(unet.plan, options.blocks)

        # 2. every block through the common trace -> convert step
        entries, results = [], []
        for number, spec in enumerate(selected):
            if on_block:
                on_block(spec.name, number, len(selected))
            start = time.perf_counter()
            component = block_component(unet, spec, latent, options.batch)
            entry = block_entry(spec, component, options.batch)
            mlmodel = to_coreml(component, convert_options.target)
            _check_features(mlmodel, entry)
            mlmodel.author = "snapfusion-coreml"
            mlmodel.version = __version__
            mlmodel.short_description = f"{spec.name} ({spec.kind} block), layout {unet.layout.name}"
            mlmodel.user_defined_metadata.update({  # no dates or paths: the same export gives the same bytes
                "snapfusion.component": "unet_block", "snapfusion.block": spec.name,
                "snapfusion.unet_layout": unet.layout.name, "snapfusion.attention": component.attention or "",
            })
            save_package(mlmodel, tmp / component.file)
            del mlmodel
            gc.collect()
            entries.append(entry)
            results.append(BlockResult(spec.name, spec.kind, entry.resolution, spec.in_channels, spec.out_channels,
                                       time.perf_counter() - start, dir_size(tmp / component.file),
                                       component.inputs[0].shape[-1]))

        # 3. the blocks manifest, last: its presence marks the folder complete
        # image_size and each block's resolution are heights (sides of square images); the declared
        # input shapes carry both sides
        image = ImageSize(latent[0] * VAE_FACTOR, latent[1] * VAE_FACTOR)
        blocks_manifest = BlocksManifest(unet.layout.name, image.height, tuple(entries))
        blocks_manifest.write(tmp)
    return BlockExportSummary(Path(options.out), blocks_manifest, results, mapping, image)


def _check_features(mlmodel, entry: BlockEntry) -> None:
    """The converted program must have exactly the blocks manifest's inputs and outputs (the Swift
    harness builds its inputs from the blocks manifest alone)."""
    description = mlmodel.get_spec().description
    for what, features in (("inputs", description.input), ("outputs", description.output)):
        got = describe_features(features)
        want = [t.to_dict() for t in getattr(entry, what)]
        if got != want:
            raise RuntimeError(f"{entry.package}: converted {what} {got} differ from the blocks manifest's {want}")
