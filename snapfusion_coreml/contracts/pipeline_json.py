"""pipeline.json, the pipeline manifest of a converted folder (docs/contracts.md section 2), as
frozen records: the one Python description of the file, written by `convert`
(convert/pipeline_manifest.py) and read by `verify`, `inspect`, `generate OUT`, `eval OUT` and
`interpret`. Its Swift twin is ios_app/Sources/SnapFusionKit/Description/PipelineDescription.swift.

    pipeline_manifest = PipelineManifest.read(folder)     # one UserError line for any bad value
    pipeline_manifest.latent.height, pipeline_manifest.component("unet").files
    pipeline_manifest.write(tmp)                          # what convert writes last

Older forms that readers keep accepting, and the defaults they read as (`to_dict` writes the
current form):
  - `"image_size": N` (square folders before non-square images)  -> image N x N;
    neither key                                                   -> image = VAE_FACTOR x latent;
  - format_version 1 (DDIM only)                                 -> the `ddim` record whose previous
                                                                    timestep is the next entry;
  - format_version 1 or 2, or no `components.encoder`            -> no VAE encoder (text to image only);
  - no `guidance.embedding`                                       -> none (a plain UNet);
  - `input_ids` declared int32 (converters before 0.2)            -> kept as declared;
  - no `source.loras`                                             -> [] (no LoRA merged);
  - no `tokenizer.pad_token_id`                                   -> eos_token_id (CLIP's <|endoftext|>);
  - no `source`                                                   -> every source field unknown;
  - a component without `file`, `chunks`, `attention`, ... keys   -> null;
  - a component without `format` (folders before Core AI)         -> "coreml";
  - no `sizes` (format_version 1 and 2, or one size)                -> one size, the top-level image
                                                                    and latent, function `main`.

Values are checked beyond their types, with the rules the Swift reader applies
(PipelineDescription+Decoding.swift `firstInvalidValue`, tested on the same tests/golden/pipelines.json):
every number finite, sizes >= 1, latent.scale_factor > 0, noise_schedule.beta_start and beta_end
in (0, 1), guidance.unet_batch 1 or 2, the sampler record as samplers/record.py checks it, component
`file`/`chunks` and tokenizer `vocab`/`merges` plain file names inside the folder, `sizes` (when
present) a non-empty list of distinct sizes whose first is the top-level image and latent, each
image VAE_FACTOR x its latent and each function named `image_{H}x{W}` for its image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import BETA_SCHEDULES, PREDICTION_TYPES, SchedulerConfig
from ..errors import UserError, expected
from ..image_size import VAE_FACTOR, ImageSize, function_name
from ..io import write_json
from ..json_fields import JsonFields, read_json
from ..samplers.record import SamplerRecord

PIPELINE_JSON = "pipeline.json"
FORMAT_VERSION = 3  # 3: the optional VAE encoder and `sizes`; 2: the sampler record of docs/contracts.md section 3
READ_VERSIONS = (1, 2, 3)  # 1 (DDIM only) and 2 are still read
SINGLE_FUNCTION = "main"  # the one function of every package of a one-size folder (and of size-independent ones)
GUIDANCE_INPUT = "timestep_cond"  # the UNet input of a guidance embedding
COMPONENT_KEYS = ("text_encoder", "unet", "decoder", "encoder")  # encoder: optional (image to image), since format 3
TENSOR_DTYPES = ("float32", "float16", "int32")  # what a Core ML multi-array feature may declare
GUIDANCE_BATCHES = (1, 2)  # guidance.unet_batch: two calls, or [uncond, cond] in one
COMPONENT_FORMATS = ("coreml", "coreai")  # component `format`: .mlpackage (Core ML) or .aimodel (Core AI) files


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one model input or output (the `inputs`/`outputs` entries of
    pipeline.json components and of the blocks manifest)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"  # "float32" | "int32" (inputs), "float16" only where a package declares it

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: Any, source: str = PIPELINE_JSON) -> "TensorSpec":
        return cls.from_fields(JsonFields(data, "tensor", source))

    @classmethod
    def from_fields(cls, fields: JsonFields) -> "TensorSpec":
        return cls(fields.string("name"), fields.integers("shape", minimum=1),
                   fields.string("dtype", TENSOR_DTYPES))


@dataclass(frozen=True)
class LoraRecord:
    """One LoRA merged into the weights before palettization (source.loras, in order applied)."""

    file: str
    sha256: str | None
    scale: float
    path: str | None  # as given to `convert`; `verify` re-applies the file from there

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "scale": self.scale, "path": self.path}

    @classmethod
    def from_fields(cls, f: JsonFields) -> "LoraRecord":
        return cls(f.string("file"), f.string("sha256", default=None), f.number("scale"), f.string("path", default=None))


@dataclass(frozen=True)
class Source:
    """The model the folder was converted from."""

    model: str | None = None  # MODEL as given to `convert`
    unet_layout: str | None = None
    unet_parameters: int | None = None
    base: str | None = None  # a single-file checkpoint's architecture (sd-v1, ... or a config folder)
    loras: tuple[LoraRecord, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in (("model", self.model), ("unet_layout", self.unet_layout),
                                                  ("unet_parameters", self.unet_parameters), ("base", self.base))
                               if v is not None}
        return {**out, "loras": [lora.to_dict() for lora in self.loras]}

    @classmethod
    def from_fields(cls, f: JsonFields) -> "Source":
        return cls(f.string("model", default=None), f.string("unet_layout", default=None),
                   f.integer("unet_parameters", minimum=0, default=None), f.string("base", default=None),
                   tuple(LoraRecord.from_fields(item) for item in f.objects("loras", default=())))


@dataclass(frozen=True)
class Latent:
    """The latent the UNet denoises: authoritative for every shape (image = VAE_FACTOR x latent)."""

    channels: int
    height: int
    width: int
    scale_factor: float  # the decoder takes latents / scale_factor

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def image(self) -> ImageSize:
        return ImageSize(self.height * VAE_FACTOR, self.width * VAE_FACTOR)

    def to_dict(self) -> dict[str, Any]:
        return {"channels": self.channels, "height": self.height, "width": self.width, "scale_factor": self.scale_factor}

    @classmethod
    def from_fields(cls, f: JsonFields) -> "Latent":
        return cls(f.integer("channels", minimum=1), f.integer("height", minimum=1), f.integer("width", minimum=1),
                   f.positive("scale_factor"))


@dataclass(frozen=True)
class Size:
    """One image size of a several-size folder (`sizes`): the package function that runs it
    (`image_{H}x{W}`), its image and its latent (height, width)."""

    function: str
    image: ImageSize
    latent: tuple[int, int]

    @classmethod
    def of(cls, image: ImageSize, latent: tuple[int, int]) -> "Size":
        return cls(function_name(image), image, (int(latent[0]), int(latent[1])))

    def to_dict(self) -> dict[str, Any]:
        return {"function": self.function, "image": self.image.to_dict(),
                "latent": {"height": self.latent[0], "width": self.latent[1]}}

    @classmethod
    def from_fields(cls, f: JsonFields) -> "Size":
        image, latent = f.object("image"), f.object("latent")
        size = cls(f.string("function"), ImageSize(image.integer("height", minimum=1), image.integer("width", minimum=1)),
                   (latent.integer("height", minimum=1), latent.integer("width", minimum=1)))
        h, w = size.latent
        if size.image != ImageSize(h * VAE_FACTOR, w * VAE_FACTOR):
            raise expected(f"{f.name('image')} as {VAE_FACTOR} x its latent ({h * VAE_FACTOR}x{w * VAE_FACTOR})",
                           str(size.image), f.source)
        if size.function != function_name(size.image):
            raise f.fail("function", function_name(size.image), size.function)
        return size


def read_sizes(top: JsonFields, image: ImageSize, latent: "Latent") -> tuple[Size, ...] | None:
    """`sizes`: None when absent or null; else a non-empty list of distinct sizes, the first the
    top-level image and latent."""
    if not top.has("sizes"):
        return None
    items = top.objects("sizes")
    if not items:
        raise top.fail("sizes", "a non-empty list (or null for one size)", [])
    sizes = tuple(Size.from_fields(item) for item in items)
    functions = [size.function for size in sizes]
    repeated = sorted({name for name in functions if functions.count(name) > 1})
    if repeated:
        raise expected("sizes with distinct images", f"{', '.join(repeated)} more than once", top.source)
    first = sizes[0]
    if first.image != image or first.latent != latent.size:
        raise expected(f"sizes[0] as the top-level image {image} and latent {latent.height}x{latent.width}",
                       f"image {first.image} and latent {first.latent[0]}x{first.latent[1]}", top.source)
    return sizes


def tensors_at(tensors: tuple[TensorSpec, ...], default: Size, size: Size) -> tuple[TensorSpec, ...]:
    """A component's declared tensors (which describe the default size) at another `size`: in every
    4-D (N, C, H, W) tensor, trailing sides equal to the default latent become the size's latent and
    sides equal to the default image the size's image; other tensors are the same at every size."""
    swaps = {default.latent: size.latent, (default.image.height, default.image.width): (size.image.height, size.image.width)}
    return tuple(TensorSpec(t.name, t.shape[:2] + swaps[t.shape[2:]], t.dtype)
                 if len(t.shape) == 4 and t.shape[2:] in swaps else t for t in tensors)


@dataclass(frozen=True)
class NoiseSchedule:
    num_train_timesteps: int
    beta_start: float
    beta_end: float
    beta_schedule: str  # BETA_SCHEDULES

    def to_dict(self) -> dict[str, Any]:
        return {"num_train_timesteps": self.num_train_timesteps, "beta_start": self.beta_start,
                "beta_end": self.beta_end, "beta_schedule": self.beta_schedule}

    @classmethod
    def from_fields(cls, f: JsonFields) -> "NoiseSchedule":
        return cls(f.integer("num_train_timesteps", minimum=1), f.fraction("beta_start"),
                   f.fraction("beta_end"), f.string("beta_schedule", BETA_SCHEDULES))


@dataclass(frozen=True)
class Guidance:
    """default_scale: diffusers' w (1 = none); unet_batch: 2 runs [negative, conditional] in one
    UNet call; embedding_dim: D of the UNet's `timestep_cond` (B, D) guidance-embedding input
    (full LCM UNets, docs/contracts.md section 3), None without one: then w runs no CFG batch."""

    default_scale: float
    unet_batch: int  # GUIDANCE_BATCHES
    embedding_dim: int | None = None

    def to_dict(self) -> dict[str, Any]:
        embedding = None if self.embedding_dim is None else {"input": GUIDANCE_INPUT, "dim": self.embedding_dim}
        return {"default_scale": self.default_scale, "unet_batch": self.unet_batch, "embedding": embedding}

    @classmethod
    def from_fields(cls, f: JsonFields) -> "Guidance":
        batch = f.integer("unet_batch")
        if batch not in GUIDANCE_BATCHES:
            raise f.fail("unet_batch", " or ".join(map(str, GUIDANCE_BATCHES)), batch)
        embedding = f.object("embedding", default=None) if f.has("embedding") else None
        dim = None
        if embedding is not None:
            embedding.string("input", (GUIDANCE_INPUT,))
            dim = embedding.integer("dim", minimum=1)
        return cls(f.number("default_scale"), batch, dim)


@dataclass(frozen=True)
class Tokenizer:
    """The CLIP tokenizer files beside pipeline.json and the ids the app pads prompts with."""

    vocab: str
    merges: str
    max_length: int  # the text encoder's context length (CLIP: 77)
    bos_token_id: int
    eos_token_id: int
    pad_token_id: int  # the model's own pad (SD-2.x: 0, "!"); older folders: eos_token_id

    def to_dict(self) -> dict[str, Any]:
        return {"vocab": self.vocab, "merges": self.merges, "max_length": self.max_length,
                "bos_token_id": self.bos_token_id, "eos_token_id": self.eos_token_id, "pad_token_id": self.pad_token_id}

    @classmethod
    def from_fields(cls, f: JsonFields) -> "Tokenizer":
        eos = f.integer("eos_token_id", minimum=0)
        return cls(f.file_name("vocab"), f.file_name("merges"), f.integer("max_length", minimum=1),
                   f.integer("bos_token_id", minimum=0), eos, f.integer("pad_token_id", minimum=0, default=eos))


@dataclass(frozen=True)
class Compression:
    """How a component's weights are stored: mode "none" or "palettize" (`bits` the average bits
    per palettized weight; a mixed recipe adds its per-op `layers`, target and predicted PSNR)."""

    mode: str
    bits: float | None = None
    method: str | None = None
    granularity: str | None = None
    recipe: str | None = None  # "mixed" for a mixed-bit recipe
    target_bits: float | None = None
    layers: dict[str, int] | None = None  # op name -> bits
    predicted_psnr_db: float | None = None

    KEYS = ("mode", "recipe", "bits", "target_bits", "method", "granularity", "layers", "predicted_psnr_db")

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.KEYS if getattr(self, k) is not None}

    @classmethod
    def from_dict(cls, data: Any, source: str = PIPELINE_JSON) -> "Compression":
        return cls.from_fields(JsonFields(data, "compression", source))

    @classmethod
    def from_fields(cls, f: JsonFields) -> "Compression":
        layers = f.object("layers", default=None) if f.has("layers") else None
        return cls(f.string("mode", ("none", "palettize")), f.number("bits", minimum=0, default=None),
                   f.string("method", default=None), f.string("granularity", default=None),
                   f.string("recipe", default=None), f.number("target_bits", minimum=0, default=None),
                   None if layers is None else {k: layers.integer(k, minimum=1) for k in layers.data},
                   f.number("predicted_psnr_db", default=None))


@dataclass(frozen=True)
class Component:
    """One converted component: its package (or UNet chunks, in execution order) and declared I/O."""

    file: str | None
    chunks: tuple[str, ...] | None
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    sha256: str | None = None  # over the package tree (docs/contracts.md section 2); chunks joined by ","
    precision: str | None = None
    deployment_target: str | None = None
    attention: str | None = None
    compression: Compression | None = None
    size_bytes: int | None = None
    format: str = "coreml"  # COMPONENT_FORMATS: the runtime its files are for

    @property
    def files(self) -> list[str]:
        """The package file names, in the order they run."""
        return list(self.chunks) if self.chunks else [self.file]  # type: ignore[list-item]

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "chunks": None if self.chunks is None else list(self.chunks), "sha256": self.sha256,
                "precision": self.precision, "deployment_target": self.deployment_target, "attention": self.attention,
                "compression": None if self.compression is None else self.compression.to_dict(),
                "inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs],
                "size_bytes": self.size_bytes, "format": self.format}

    @classmethod
    def from_fields(cls, f: JsonFields) -> "Component":
        chunks = f.file_names("chunks") if f.has("chunks") else None
        file = f.file_name("file", default=None)
        if not file and not chunks:
            raise expected(f"{f.path} with a file or chunks", "neither", f.source)
        compression = Compression.from_fields(f.object("compression")) if f.has("compression") else None
        return cls(file, chunks, tuple(TensorSpec.from_fields(t) for t in f.objects("inputs")),
                   tuple(TensorSpec.from_fields(t) for t in f.objects("outputs")),
                   f.string("sha256", default=None), f.string("precision", default=None),
                   f.string("deployment_target", default=None), f.string("attention", default=None), compression,
                   f.integer("size_bytes", minimum=0, default=None), f.string("format", COMPONENT_FORMATS, default="coreml"))


@dataclass(frozen=True)
class PipelineManifest:
    """The whole of pipeline.json (format_version 3; 1 and 2 are read too)."""

    tool_version: str
    prediction_type: str  # PREDICTION_TYPES
    image: ImageSize
    latent: Latent
    noise_schedule: NoiseSchedule
    sampler: SamplerRecord
    guidance: Guidance
    tokenizer: Tokenizer
    components: dict[str, Component]  # a subset of COMPONENT_KEYS, in that order
    source: Source = field(default_factory=Source)
    tool_name: str = "snapfusion-coreml"
    sizes: tuple[Size, ...] | None = None  # several sizes (multifunction packages), the default first

    @property
    def size_list(self) -> tuple[Size, ...]:
        """Every size the folder runs, the default first: `sizes`, or the one size as function `main`."""
        return self.sizes or (Size(SINGLE_FUNCTION, self.image, self.latent.size),)

    def size(self, image: ImageSize | None, where: str = PIPELINE_JSON) -> Size:
        """The size that runs `image` (None: the default), or one error listing the folder's sizes."""
        sizes = self.size_list
        if image is None:
            return sizes[0]
        for size in sizes:
            if size.image == image:
                return size
        listed = ", ".join(str(s.image) for s in sizes)
        raise UserError(f"expected an image size this folder was converted for ({listed}), got {image} (in {where})")

    def component(self, key: str, where: str = PIPELINE_JSON) -> Component:
        """The component `key`, or one error naming the ones the folder has."""
        if key not in self.components:
            raise expected(f"a component from {sorted(self.components)}", repr(key), where)
        return self.components[key]

    @property
    def scheduler(self) -> SchedulerConfig:
        """The noise schedule and prediction type as the PyTorch sampler takes them."""
        return SchedulerConfig(**self.noise_schedule.to_dict(), prediction_type=self.prediction_type,
                               timestep_spacing=self.sampler.settings.timestep_spacing,
                               steps_offset=self.sampler.settings.steps_offset)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "tool": {"name": self.tool_name, "version": self.tool_version},
            "source": self.source.to_dict(),
            "prediction_type": self.prediction_type,
            "image": self.image.to_dict(),
            "latent": self.latent.to_dict(),
            "noise_schedule": self.noise_schedule.to_dict(),
            "sampler": self.sampler.to_dict(),
            "guidance": self.guidance.to_dict(),
            "tokenizer": self.tokenizer.to_dict(),
            "components": {k: c.to_dict() for k, c in self.components.items()},
            "sizes": None if self.sizes is None else [size.to_dict() for size in self.sizes],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = PIPELINE_JSON) -> "PipelineManifest":
        """Check and read a pipeline.json object; `source` names the file in errors."""
        top = JsonFields(data, "", source)
        version = top.raw("format_version", None)
        if version not in READ_VERSIONS or isinstance(version, bool):
            raise expected(f"{PIPELINE_JSON} format_version {' or '.join(map(str, READ_VERSIONS))}",
                           "none" if version is None else repr(version), source)
        tool = top.object("tool")
        components = top.object("components")
        unknown = sorted(set(components.data) - set(COMPONENT_KEYS))
        if unknown:
            raise expected(f"components from {', '.join(COMPONENT_KEYS)}", ", ".join(unknown), source)
        latent = Latent.from_fields(top.object("latent"))
        image = _image(top, latent)
        return cls(
            tool_version=tool.string("version"),
            prediction_type=top.string("prediction_type", PREDICTION_TYPES),
            image=image,
            latent=latent,
            noise_schedule=NoiseSchedule.from_fields(top.object("noise_schedule")),
            sampler=SamplerRecord.from_fields(top.object("sampler"), version),
            guidance=Guidance.from_fields(top.object("guidance")),
            tokenizer=Tokenizer.from_fields(top.object("tokenizer")),
            components={k: Component.from_fields(components.object(k)) for k in COMPONENT_KEYS if components.has(k)},
            source=Source.from_fields(top.object("source", default=None)),
            tool_name=tool.string("name"),
            sizes=read_sizes(top, image, latent),
        )

    @classmethod
    def read(cls, folder: Path | str) -> "PipelineManifest":
        """FOLDER/pipeline.json, checked (not the packages it lists: see interpreter/folder.py)."""
        path = Path(folder) / PIPELINE_JSON
        if not path.is_file():
            raise UserError(f"expected {PIPELINE_JSON} in {folder} (an incomplete or foreign folder), found none")
        return cls.from_dict(read_json(path, PIPELINE_JSON), str(path))

    def write(self, folder: Path | str) -> Path:
        """FOLDER/pipeline.json, written atomically; its path."""
        path = Path(folder) / PIPELINE_JSON
        write_json(path, self.to_dict())
        return path


def _image(top: JsonFields, latent: Latent) -> ImageSize:
    """`image` {height, width}, the older square `image_size`, or VAE_FACTOR x the latent."""
    if top.has("image"):
        image = top.object("image")
        return ImageSize(image.integer("height", minimum=1), image.integer("width", minimum=1))
    if top.has("image_size"):
        return ImageSize.square(top.integer("image_size", minimum=1))
    return latent.image
