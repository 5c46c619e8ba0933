"""Estimated end-to-end iPhone 14 Pro latency of a MODEL folder or a layout preset, read from the
configs only (no weights are loaded, so full-size models estimate in milliseconds)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import DecoderConfig, LayoutPairing, PipelineDefaults, SchedulerConfig, UNetLayout, resolve_layout
from ..errors import UserError
from ..guidance import runs_cfg
from ..json_fields import read_json
from ..samplers.settings import SamplerSettings, model_settings, unet_calls
from .cost_model import CLIP_TEXT, PipelineEstimate, estimate_pipeline


@dataclass(frozen=True)
class ModelShapes:
    layout: UNetLayout
    decoder: DecoderConfig
    defaults: PipelineDefaults
    text: dict[str, int]
    sampler: SamplerSettings = SamplerSettings("ddim", "trailing")


@dataclass(frozen=True)
class Sampling:
    """What one image costs in UNet work: the sampler, its steps, whether CFG runs."""

    sampler: str
    steps: int
    guidance: float
    cfg: bool  # a negative-prompt pass per step (batch 2)
    unet_calls: int  # calls per image, each at batch 2 when cfg

    @property
    def unet_evaluations(self) -> int:
        """UNet evaluations per image (a batch-2 call counts twice)."""
        return self.unet_calls * (2 if self.cfg else 1)


def shapes_from_model(model: Path) -> ModelShapes:
    """Layout, decoder config, defaults and text encoder sizes of a folder `load_pipeline` accepts."""
    from ..modeling.diffusers_config import unet_folder_layout
    from ..modeling.vae_decoder import CONFIG_NAME, decoder_config_from_diffusers

    root = Path(model)
    if not root.is_dir():
        raise UserError(f"model folder not found: {root}")
    layout = unet_folder_layout(root / "unet")
    vae_config = None
    if (root / "vae_decoder" / CONFIG_NAME).is_file():
        path = root / "vae_decoder" / CONFIG_NAME
        decoder = DecoderConfig.from_dict(read_json(path, "the decoder config"), str(path))
    else:
        path = root / "vae" / "config.json"
        vae_config = read_json(path, "the VAE config")
        decoder = decoder_config_from_diffusers(vae_config, str(path))
    scheduler_path = root / "scheduler" / "scheduler_config.json"
    scheduler_config = read_json(scheduler_path, "the scheduler config") if scheduler_path.is_file() else None
    if (root / "snapfusion.json").is_file():
        path = root / "snapfusion.json"
        defaults = PipelineDefaults.from_dict(read_json(path, "the sampling defaults"), str(path))
    else:
        from ..modeling.diffusers_config import diffusers_defaults

        index = read_json(root / "model_index.json", "model_index.json") if (root / "model_index.json").is_file() else {}
        defaults = diffusers_defaults(vae_config or {}, layout, index.get("_class_name"), scheduler_config)
    text = dict(CLIP_TEXT)
    text_config = root / "text_encoder" / "config.json"
    if text_config.is_file():
        cfg = read_json(text_config, "the text encoder config")
        text.update(hidden=int(cfg.get("hidden_size", text["hidden"])), layers=int(cfg.get("num_hidden_layers", text["layers"])),
                    heads=int(cfg.get("num_attention_heads", text["heads"])),
                    intermediate=int(cfg.get("intermediate_size", text["intermediate"])))
    sampler = model_settings(SchedulerConfig(), scheduler_config, str(scheduler_path))
    return ModelShapes(layout, decoder, defaults, text, sampler)


def shapes_from_preset(layout: str) -> ModelShapes:
    """A layout preset with the decoder and steps SnapFusion pairs it with (config.LayoutPairing)."""
    resolved = resolve_layout(layout)
    pairing = LayoutPairing.of(resolved)
    return ModelShapes(resolved, pairing.decoder, PipelineDefaults(steps=pairing.steps), dict(CLIP_TEXT))


def sampling(shapes: ModelShapes, steps: int | None = None, sampler: str | None = None,
             guidance: float | None = None) -> Sampling:
    """The model's sampler (or `sampler`), steps and guidance, as UNet calls per image."""
    settings = shapes.sampler if sampler is None else model_settings(
        SchedulerConfig(), shapes.sampler.as_scheduler_config(), "the model's scheduler", sampler)
    steps = steps or shapes.defaults.steps
    w = shapes.defaults.guidance_scale if guidance is None else guidance
    return Sampling(settings.name, steps, w, runs_cfg(w, shapes.layout.time_cond_proj_dim), unet_calls(settings.name, steps))


def estimate(shapes: ModelShapes, steps: int | None = None, image_size: int | None = None,
             sampler: str | None = None, guidance: float | None = None) -> tuple[PipelineEstimate, Sampling]:
    """The estimated pipeline at the model's (or the given) sampler, steps and guidance."""
    plan = sampling(shapes, steps, sampler, guidance)
    result = estimate_pipeline(shapes.layout, shapes.decoder, plan.steps, image_size or shapes.defaults.image_size,
                               unet_batch=2 if plan.cfg else 1, text=shapes.text, unet_calls=plan.unet_calls)
    return result, plan
