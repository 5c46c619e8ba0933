"""The frozen configuration of one `convert` run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..coreml.tools import TARGETS
from ..errors import UserError
from ..image_size import ImageSize, parse_image_size
from ..modeling.attention import AttentionImpl
from ..modeling.lora import LoraSpec

COMPONENTS = ("text_encoder", "unet", "decoder")
PALETTIZE_BITS = (4, 6, 8)
MIXED_BITS_CHOICES = (2, 4, 6, 8)


@dataclass(frozen=True)
class CompressionSpec:
    """How weights are compressed: none, one bit width, or a mixed-bit recipe of an average."""

    mode: str = "none"  # "none" | "palettize" | "mixed"
    bits: float = 16.0  # the bit width, or the mixed recipe's target average
    method: str = "kmeans"  # "kmeans" | "uniform"

    @property
    def enabled(self) -> bool:
        return self.mode != "none"


def parse_palettize(value: str, method: str) -> tuple[CompressionSpec, tuple[tuple[str, CompressionSpec], ...]]:
    """--palettize as (default for text encoder and UNet, per-component overrides).

    Either one spec ("6", "mixed:4.5") or comma-separated COMPONENT=SPEC pairs
    ("text_encoder=8,unet=6"; the decoder may be named too). Components not named stay fp16.
    """
    if "=" not in value:
        return parse_compression(value, method), ()
    overrides = []
    for part in (p.strip() for p in value.split(",") if p.strip()):
        key, _, spec = part.partition("=")
        if key.strip() not in COMPONENTS or not spec:
            raise UserError(f"expected --palettize COMPONENT=SPEC with COMPONENT from {', '.join(COMPONENTS)}, got {part!r}")
        overrides.append((key.strip(), parse_compression(spec, method)))
    return CompressionSpec(), tuple(overrides)


def parse_compression(value: str, method: str) -> CompressionSpec:
    """--palettize none|4|6|8|mixed:BITS and --palettize-mode kmeans|uniform."""
    if method not in ("kmeans", "uniform"):
        raise UserError(f"expected --palettize-mode kmeans or uniform, got {method!r}")
    text = value.strip().lower()
    if text == "none":
        return CompressionSpec()
    if text.startswith("mixed:"):
        try:
            bits = float(text.split(":", 1)[1])
        except ValueError:
            bits = -1.0
        if not MIXED_BITS_CHOICES[0] <= bits <= MIXED_BITS_CHOICES[-1]:
            raise UserError(f"expected --palettize mixed:BITS with 2 <= BITS <= 8, got {value!r}")
        return CompressionSpec("mixed", bits, method)
    if text.isdigit() and int(text) in PALETTIZE_BITS:
        return CompressionSpec("palettize", float(int(text)), method)
    raise UserError(f"expected --palettize none, 4, 6, 8 or mixed:BITS, got {value!r}")


@dataclass(frozen=True)
class ConvertOptions:
    out: Path
    components: tuple[str, ...] = COMPONENTS
    attention: AttentionImpl = AttentionImpl.SPLIT_EINSUM
    compression: CompressionSpec = CompressionSpec()  # text encoder and UNet (Apple keeps the decoder fp16)
    component_compression: tuple[tuple[str, CompressionSpec], ...] = ()  # per-component overrides
    image_size: ImageSize | None = None  # default: the model's (an int is read as a square)
    unet_batch: int = 2
    target: str = "iOS16"
    chunk_unet: bool = False
    overwrite: bool = False
    layout: str | None = None  # preset name or layout JSON path
    allow_pickle: bool = False
    base: str | None = None  # architecture of a single-file checkpoint: sd-v1, sd-v2, sd-v2-base or a config folder
    loras: tuple[LoraSpec, ...] = ()  # merged into the UNet and text encoder weights, in order

    def __post_init__(self) -> None:
        object.__setattr__(self, "attention", AttentionImpl(self.attention))
        if isinstance(self.image_size, (int, str)):
            object.__setattr__(self, "image_size", parse_image_size(self.image_size))
        bad = [c for c in self.components if c not in COMPONENTS]
        if bad or not self.components:
            raise UserError(f"expected --components from {','.join(COMPONENTS)}, got {','.join(self.components) or 'nothing'}")
        if self.target not in TARGETS:
            raise UserError(f"expected --target one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.unet_batch not in (1, 2):
            raise UserError(f"expected --unet-batch 1 or 2, got {self.unet_batch}")
        unused = [c for c, _ in self.component_compression if c not in self.components]
        if unused:
            raise UserError(f"expected --palettize to name converted components, got {','.join(unused)} "
                            f"(--components {','.join(self.components)})")
        if self.chunk_unet and "unet" not in self.components:
            raise UserError("--chunk-unet needs the unet component")

    def compression_for(self, component: str, palettized_by_default: bool) -> CompressionSpec:
        """The compression of one component: its override, else the default where it applies."""
        overrides = dict(self.component_compression)
        if component in overrides:
            return overrides[component]
        return self.compression if palettized_by_default else CompressionSpec()

    @property
    def grouped_channel_luts(self) -> bool:
        """Per-grouped-channel palettization needs the iOS 18 opset."""
        return self.target == "iOS18"
