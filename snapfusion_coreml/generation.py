"""One `generate` request: a prompt (and optionally an init image) -> a PNG, with the PyTorch
pipeline of a model folder or with the packages of a converted folder run by the interpreter
(interpreter/backend.py). Everything that can be checked from the options and config files is
checked before torch is imported, so bad input fails in well under a second."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from .assets import default_model_dir
from .errors import UserError
from .image_size import ImageSize
from .io import claim_file, os_error, writable_parent
from .modeling.diffusers_config import check_image_size_fits
from .modeling.source import resolve_model_path

DEFAULT_STRENGTH = 0.8
StepProgress = Callable[[int, int], None]  # (UNet steps done, total): 0 first, then after every step


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str
    out: Path  # the PNG file, written atomically
    model: Optional[str] = None  # model folder, hub id or converted folder [default: the bundled model]
    negative_prompt: str = ""
    steps: Optional[int] = None
    sampler: Optional[str] = None
    eta: Optional[float] = None
    guidance: Optional[float] = None
    seed: int = 0
    image_size: Optional[ImageSize] = None
    device: str = "auto"  # auto, cpu or cuda (model folders; a converted folder runs on the CPU)
    precision: Optional[str] = None  # converted folders only: fp16 (default) or fp32
    init_image: Optional[Path] = None
    strength: Optional[float] = None  # with init_image [default: DEFAULT_STRENGTH]
    allow_pickle: bool = False


@dataclass(frozen=True)
class GenerateResult:
    out: Path
    width: int
    height: int
    steps: int  # sampling steps asked for (or the model's default)
    sampler: str
    unet_steps: int  # UNet steps that ran (image to image skips the start of the schedule)
    seed: int
    backend: str
    init_image: Optional[Path] = None
    strength: Optional[float] = None

    def to_dict(self) -> dict[str, Any]:
        """What `generate --json` prints."""
        return {"out": str(self.out), "width": self.width, "height": self.height, "steps": self.steps,
                "sampler": self.sampler, "unet_steps": self.unet_steps, "seed": self.seed, "backend": self.backend,
                **({} if self.init_image is None else {"init_image": str(self.init_image), "strength": self.strength})}

    def summary(self) -> str:
        """The line `generate` prints."""
        what = "" if self.init_image is None else f", from {self.init_image} at strength {self.strength:g}"
        return (f"wrote {self.out} ({self.width}x{self.height}, {self.sampler}, {self.unet_steps} steps, "
                f"seed {self.seed}{what}, {self.backend})")


def generate_png(request: GenerateRequest, on_step: StepProgress = lambda done, total: None) -> GenerateResult:
    """Check the request (before torch is imported), load the model, draw the image, write the PNG."""
    start, strength = _check_init_image(request)
    converted = _check_model(request)
    pipeline = _open_pipeline(request, converted, strength)
    from .io import write_png
    from .samplers.img2img import start_index
    from .samplers.plan import plan

    steps = request.steps or pipeline.defaults.steps
    settings = pipeline.sampler_settings(request.sampler, request.eta)
    total = plan(settings, pipeline.scheduler, steps).calls  # refuses impossible steps
    if start is not None:
        total -= start_index(steps, strength)
    image_args = {} if start is None else {"init_image": start, "strength": strength}
    on_step(0, total)
    try:
        image = pipeline.generate(request.prompt, request.steps, request.guidance, request.seed, request.image_size,
                                  on_step=lambda i, t, z: on_step(i + 1, total),
                                  negative_prompt=request.negative_prompt, sampler=settings, **image_args)
    finally:
        if converted:
            pipeline.close()  # a Core AI folder's loaded assets
    try:
        write_png(request.out, image)
    except OSError as exc:
        raise os_error(exc, request.out) from None
    return GenerateResult(request.out, image.shape[1], image.shape[0], steps, settings.name, total, request.seed,
                          pipeline.runtime if converted else "PyTorch", request.init_image,
                          None if start is None else strength)


def _check_init_image(request: GenerateRequest):
    """(the opened init image or None, the strength): a bad file fails before any model is read."""
    out = request.out
    if out.suffix.lower() != ".png":
        raise UserError(f"expected an output file ending in .png, got {out}")
    if request.strength is not None and request.init_image is None:
        raise UserError(f"expected --strength only with --init-image, got --strength {request.strength} alone")
    start = strength = None
    if request.init_image is not None:
        from .init_image import open_init_image
        from .samplers.img2img import check_strength

        strength = check_strength(DEFAULT_STRENGTH if request.strength is None else request.strength)
        start = open_init_image(request.init_image)
    if out.is_dir():
        raise UserError(f"expected an output file ending in .png, got a folder: {out}")
    writable_parent(out)
    claim_file(out)  # Ctrl-C from here on: "interrupted; OUT untouched"
    return start, strength


def _check_model(request: GenerateRequest) -> bool:
    """Whether the model is a converted folder; the size, steps and flags it cannot take are refused
    from its config files alone."""
    from .contracts.pipeline_json import PIPELINE_JSON, PipelineManifest

    model = request.model
    converted = model is not None and (Path(model) / PIPELINE_JSON).is_file()
    if converted and request.device == "cuda":
        raise UserError("expected --device auto or cpu for a converted folder (the interpreter runs on the CPU), got cuda")
    if not converted:
        if request.precision is not None:
            raise UserError(f"expected --precision only with a converted folder (with {PIPELINE_JSON}), "
                            f"got a model: {model or default_model_dir()}")
        model_path = resolve_model_path(str(model or default_model_dir()))  # a missing MODEL fails before torch
        check_image_size_fits(request.image_size, model_path)
    else:  # one of the sizes the folder was converted for, from pipeline.json alone
        PipelineManifest.read(model).size(request.image_size, str(Path(model) / PIPELINE_JSON))
    check_steps_fit(request.steps, Path(model) if converted else model_path, converted)
    return converted


def check_steps_fit(steps: Optional[int], model: Path | None, converted: bool) -> None:
    """Refuse --steps above the noise schedule's num_train_timesteps, from config files alone: a
    converted folder's pipeline.json, or a model folder's scheduler/scheduler_config.json."""
    from .contracts.pipeline_json import PIPELINE_JSON, PipelineManifest
    from .json_fields import JsonFields, read_json

    if steps is None or model is None:
        return
    if converted:
        where = Path(model) / PIPELINE_JSON
        limit = PipelineManifest.read(model).noise_schedule.num_train_timesteps
    else:
        where = Path(model) / "scheduler" / "scheduler_config.json"
        if not where.is_file():
            return  # a single-file checkpoint or a hub id: checked once loaded
        limit = JsonFields(read_json(where, "the scheduler config"), "", str(where)).integer(
            "num_train_timesteps", minimum=1, default=1000)
    if steps > limit:
        raise UserError(f"expected --steps <= {limit} (the noise schedule's num_train_timesteps), got {steps} (in {where})")


def _open_pipeline(request: GenerateRequest, converted: bool, strength: Optional[float]):
    """The converted folder's packages in the interpreter, or the model folder's PyTorch pipeline
    on the chosen device; a missing VAE encoder for an init image is refused before the weights load."""
    if converted:
        from .interpreter.backend import load_package_pipeline

        pipeline = load_package_pipeline(request.model, request.precision or "fp16")
        if request.init_image is not None and "encoder" not in pipeline.folder.components:
            raise UserError(f"expected a VAE encoder in {request.model} for --init-image, found none: "
                            "convert with --components including encoder")
        return pipeline
    import torch

    from .modeling.attention import AttentionImpl
    from .modeling.loading import ModelFolder

    device = request.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    folder = ModelFolder(str(request.model or default_model_dir()), attention=AttentionImpl.ORIGINAL,
                         allow_pickle=request.allow_pickle)
    if request.init_image is not None:
        from .samplers.img2img import start_index

        start_index(request.steps or folder.defaults.steps, strength)  # too few steps: before the weights are read
        if not folder.has_encoder:
            raise UserError(f"expected a model with a VAE encoder for --init-image, got {folder.source} without one")
    pipeline = folder.pipeline()
    for module in (pipeline.text_encoder, pipeline.unet, pipeline.decoder, pipeline.encoder):
        if module is not None:
            module.to(device)
    return pipeline
