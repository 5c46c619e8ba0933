"""The frozen configuration of one `convert` run (its flags are parsed in convert_spec.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..convert_spec import COMPONENTS, CompressionSpec, LoraSpec, check_components, check_coreai_flags, check_overrides_converted
from ..coreai.tools import FORMATS
from ..coreml.tools import TARGETS
from ..errors import UserError
from ..image_size import ImageSize, parse_image_size
from ..modeling.attention import AttentionImpl
from ..samplers.settings import check_sampler_name


@dataclass(frozen=True)
class ConvertOptions:
    out: Path
    components: tuple[str, ...] = COMPONENTS
    attention: AttentionImpl = AttentionImpl.SPLIT_EINSUM
    compression: CompressionSpec = CompressionSpec()  # text encoder and UNet (Apple keeps the decoder fp16)
    component_compression: tuple[tuple[str, CompressionSpec], ...] = ()  # per-component overrides
    image_size: ImageSize | None = None  # default: the model's (an int is read as a square)
    unet_batch: int | None = None  # None: 1 where sampling runs no CFG batch (w <= 1, guidance embedding), else 2
    target: str = "iOS16"
    chunk_unet: bool = False
    overwrite: bool = False
    layout: str | None = None  # preset name or layout JSON path
    allow_pickle: bool = False
    base: str | None = None  # architecture of a single-file checkpoint: sd-v1, sd-v2, sd-v2-base or a config folder
    loras: tuple[LoraSpec, ...] = ()  # merged into the UNet and text encoder weights, in order
    sampler: str | None = None  # another sampler than the model's scheduler config names (samplers/settings.py)
    steps: int | None = None  # sampling steps planned into pipeline.json (default: the model's)
    guidance: float | None = None  # default guidance scale recorded in pipeline.json (default: the model's)
    eta: float | None = None  # tcd's gamma
    format: str = "coreml"  # "coreml" (.mlpackage, iOS 16+) or "coreai" (.aimodel, iOS / macOS 27)

    def __post_init__(self) -> None:
        object.__setattr__(self, "attention", AttentionImpl(self.attention))
        if isinstance(self.image_size, (int, str)):
            object.__setattr__(self, "image_size", parse_image_size(self.image_size))
        check_components(self.components)
        if self.target not in TARGETS:
            raise UserError(f"expected --target one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.unet_batch not in (None, 1, 2):
            raise UserError(f"expected --unet-batch 1 or 2, got {self.unet_batch}")
        check_overrides_converted(self.component_compression, self.components)
        if self.sampler is not None:
            check_sampler_name(self.sampler)
        if self.steps is not None and self.steps < 1:
            raise UserError(f"expected --steps >= 1, got {self.steps}")
        if self.chunk_unet and "unet" not in self.components:
            raise UserError("--chunk-unet needs the unet component")
        if self.format not in FORMATS:
            raise UserError(f"expected --format {' or '.join(FORMATS)}, got {self.format!r}")
        if self.format == "coreai":
            check_coreai_flags(self.chunk_unet, self.compression, self.component_compression)

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

