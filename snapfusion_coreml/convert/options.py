"""The frozen configuration of one `convert` run (its flags are parsed in convert_spec.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..convert_spec import (
    COMPONENTS,
    CompressionSpec,
    LoraSpec,
    check_components,
    check_coreai_flags,
    check_overrides_converted,
    resolve_target,
)
from ..coreai.tools import FORMATS
from ..coreml.tools import TARGETS
from ..errors import UserError
from ..image_size import ImageSize, parse_image_sizes
from ..modeling.attention_impl import AttentionImpl
from ..samplers.settings import check_sampler_name


@dataclass(frozen=True)
class ConvertOptions:
    out: Path
    components: tuple[str, ...] = COMPONENTS
    attention: AttentionImpl = AttentionImpl.SPLIT_EINSUM
    compression: CompressionSpec = CompressionSpec()  # text encoder and UNet (Apple keeps the decoder fp16)
    component_compression: tuple[tuple[str, CompressionSpec], ...] = ()  # per-component overrides
    image_size: ImageSize | None = None  # default: the model's (an int is read as a square)
    # several sizes in one folder: every size, the default (= image_size) first; () for one size.
    # image_size may also be given as the list (a tuple, or "512,512x768" as --image-size takes it)
    image_sizes: tuple[ImageSize, ...] = ()
    unet_batch: int | None = None  # None: 1 where sampling runs no CFG batch (w <= 1, guidance embedding), else 2
    target: str | None = None  # None: iOS16, or iOS18 for several image sizes (convert_spec.resolve_target)
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
        self._set_sizes()
        check_components(self.components)
        if self.target is not None and self.target not in TARGETS:
            raise UserError(f"expected --target one of {', '.join(TARGETS)}, got {self.target!r}")
        object.__setattr__(self, "target", resolve_target(self.target, len(self.sizes), self.format))
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

    def _set_sizes(self) -> None:
        """image_size (the default size) and image_sizes (all of them, when several) from either."""
        given = self.image_size
        if isinstance(given, (int, str)):
            given = parse_image_sizes(given)
        if isinstance(given, (tuple, list)):
            sizes = tuple(given)
        elif self.image_sizes:
            sizes = tuple(self.image_sizes)
            if given is not None and given != sizes[0]:
                raise ValueError(f"image_size {given} is not the first of image_sizes {', '.join(map(str, sizes))}")
        else:
            sizes = () if given is None else (given,)
        if len(set(sizes)) != len(sizes):
            raise UserError(f"expected distinct image sizes, got {', '.join(map(str, sizes))}")
        default = sizes[0] if sizes else None
        object.__setattr__(self, "image_size", default)
        object.__setattr__(self, "image_sizes", sizes if len(sizes) > 1 else ())

    @property
    def sizes(self) -> tuple[ImageSize | None, ...]:
        """Every image size converted, the default first (None: the model's own size)."""
        return self.image_sizes or (self.image_size,)

    @property
    def multifunction(self) -> bool:
        """Several sizes: the size-dependent packages get one function per size."""
        return len(self.image_sizes) > 1

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

