"""What a `convert` run is asked for, parsed without torch or coremltools: components,
compression (--palettize), LoRA files (--lora) and the deployment target a size list needs. The CLI checks these before anything heavy is
imported, so bad input fails in well under a second."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .coreml.tools import TARGETS
from .errors import UserError

COMPONENTS = ("text_encoder", "unet", "decoder", "encoder")  # encoder: the VAE encoder of image to image
# What `convert` converts when --components is not given: every component the model has (a model
# without a VAE encoder converts the other three; naming `encoder` then is an error).
DEFAULT_COMPONENTS = COMPONENTS
UNPALETTIZED = ("decoder", "encoder")  # kept fp16 unless --palettize names them, as Apple keeps its VAE
PALETTIZE_BITS = (4, 6, 8)
MIXED_BITS_CHOICES = (2, 4, 6, 8)
DEFAULT_TARGET = "iOS16"
# Several sizes in one folder are multifunction packages (one function per size), which Core ML
# loads by MLModelConfiguration.functionName: iOS 18 / macOS 15, Core ML specification 9.
MULTIFUNCTION_TARGET = "iOS18"


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
    ("text_encoder=8,unet=6"; the decoder and encoder may be named too). Components not named stay fp16.
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


def parse_components(text: str) -> tuple[str, ...]:
    """--components "text_encoder,unet" -> ("text_encoder", "unet"), each from COMPONENTS."""
    components = tuple(c.strip() for c in text.split(",") if c.strip())
    check_components(components)
    return components


def check_components(components: tuple[str, ...]) -> None:
    """At least one component, each from COMPONENTS."""
    if not components or any(c not in COMPONENTS for c in components):
        raise UserError(f"expected --components from {','.join(COMPONENTS)}, got {','.join(components) or 'nothing'}")


def check_overrides_converted(component_compression: tuple[tuple[str, CompressionSpec], ...],
                              components: tuple[str, ...]) -> None:
    """Per-component --palettize entries must name converted components."""
    unused = [c for c, _ in component_compression if c not in components]
    if unused:
        raise UserError(f"expected --palettize to name converted components, got {','.join(unused)} "
                        f"(--components {','.join(components)})")


def check_coreai_flags(chunk_unet: bool, compression: CompressionSpec,
                       component_compression: tuple[tuple[str, CompressionSpec], ...]) -> None:
    """What `--format coreai` does not do: chunking (a Core ML memory workaround), mixed-bit
    recipes (computed by the Core ML interpreter) and uniform palettes (coreai-opt palettizes by
    k-means)."""
    if chunk_unet:
        raise UserError("expected --chunk-unet only with --format coreml, got --format coreai")
    specs = [compression, *(spec for _, spec in component_compression)]
    if any(spec.mode == "mixed" for spec in specs):
        raise UserError("expected --palettize none, 4, 6 or 8 with --format coreai, got a mixed:BITS recipe")
    if any(spec.enabled and spec.method != "kmeans" for spec in specs):
        raise UserError("expected --palettize-mode kmeans with --format coreai (coreai-opt palettizes by k-means), got uniform")


def resolve_target(target: str | None, sizes: int, fmt: str = "coreml") -> str:
    """The deployment target of a conversion to `sizes` image sizes: --target when given, else
    iOS18 for several sizes (multifunction packages) and iOS16 for one. Refuses an older target or
    --format coreai with several sizes, in one line."""
    if sizes > 1 and fmt == "coreai":
        raise UserError(f"expected one --image-size with --format coreai (several sizes in one folder are "
                        f"multifunction Core ML packages), got {sizes} sizes")
    if target is None:
        return MULTIFUNCTION_TARGET if sizes > 1 else DEFAULT_TARGET
    if sizes > 1 and target in TARGETS and TARGETS.index(target) < TARGETS.index(MULTIFUNCTION_TARGET):
        raise UserError(f"expected --target {MULTIFUNCTION_TARGET} (or none) with several --image-size sizes: "
                        f"multifunction packages need iOS 18 / macOS 15 (MLModelConfiguration.functionName), "
                        f"got --target {target}")
    return target


@dataclass(frozen=True)
class LoraSpec:
    """One --lora FILE[:SCALE]."""

    path: Path
    scale: float = 1.0

    def check_file(self) -> None:
        """The file exists and is safetensors (its tensors are checked by modeling/lora.read_lora)."""
        if not self.path.is_file():
            raise UserError(f"LoRA file not found: {self.path}")
        if self.path.suffix != ".safetensors":
            raise UserError(f"expected a .safetensors LoRA file, got {self.path.name} (in {self.path})")


def parse_lora_option(text: str) -> LoraSpec:
    """--lora FILE[:SCALE] -> LoraSpec; the scale defaults to 1.0 and must be a finite number.

    A colon is read as the scale separator only when FILE alone names an existing file or the
    whole text does not (so paths containing colons still work).
    """
    head, sep, tail = text.rpartition(":")
    if not sep or (Path(text).is_file() and not Path(head).is_file()):
        return LoraSpec(Path(text))
    try:
        scale = float(tail)
    except ValueError:
        raise UserError(f"expected --lora FILE[:SCALE] with SCALE a number, got {tail!r} (in {text!r})") from None
    if not math.isfinite(scale):
        raise UserError(f"expected --lora FILE[:SCALE] with a finite SCALE, got {tail!r} (in {text!r})")
    return LoraSpec(Path(head), scale)
