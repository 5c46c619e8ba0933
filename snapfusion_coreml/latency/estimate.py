"""Estimated end-to-end iPhone 14 Pro latency of a MODEL folder or a layout preset, read from the
configs only (no weights are loaded, so full-size models estimate in milliseconds)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import DecoderConfig, PipelineDefaults, UNetLayout, resolve_layout
from ..errors import UserError
from ..io import read_json
from .cost_model import CLIP_TEXT, PipelineEstimate, estimate_pipeline


@dataclass(frozen=True)
class ModelShapes:
    layout: UNetLayout
    decoder: DecoderConfig
    defaults: PipelineDefaults
    text: dict[str, int]


def shapes_from_model(model: Path) -> ModelShapes:
    """Layout, decoder config, defaults and text encoder sizes of a folder `load_pipeline` accepts."""
    from ..modeling.diffusers_config import unet_folder_layout
    from ..modeling.vae_decoder import CONFIG_NAME, decoder_config_from_diffusers

    root = Path(model)
    if not root.is_dir():
        raise UserError(f"model folder not found: {root}")
    layout = unet_folder_layout(root / "unet")
    if (root / "vae_decoder" / CONFIG_NAME).is_file():
        path = root / "vae_decoder" / CONFIG_NAME
        decoder = DecoderConfig.from_dict(read_json(path, "the decoder config"), str(path))
    else:
        path = root / "vae" / "config.json"
        decoder = decoder_config_from_diffusers(read_json(path, "the VAE config"), str(path))
    if (root / "snapfusion.json").is_file():
        defaults = PipelineDefaults.from_dict(read_json(root / "snapfusion.json", "the sampling defaults"))
    else:
        defaults = PipelineDefaults(steps=50, image_size=layout.sample_size * decoder.latent_factor)
    text = dict(CLIP_TEXT)
    text_config = root / "text_encoder" / "config.json"
    if text_config.is_file():
        cfg = read_json(text_config, "the text encoder config")
        text.update(hidden=int(cfg.get("hidden_size", text["hidden"])), layers=int(cfg.get("num_hidden_layers", text["layers"])),
                    heads=int(cfg.get("num_attention_heads", text["heads"])),
                    intermediate=int(cfg.get("intermediate_size", text["intermediate"])))
    return ModelShapes(layout, decoder, defaults, text)


def shapes_from_preset(layout: str) -> ModelShapes:
    """A layout preset with the decoder SnapFusion pairs it with: full for sd-v1.5, 0.5 width otherwise."""
    resolved = resolve_layout(layout)
    full = resolved.name == "sd-v1.5"
    return ModelShapes(resolved, DecoderConfig(width_multiplier=1.0 if full else 0.5),
                       PipelineDefaults(steps=50 if full else 8), dict(CLIP_TEXT))


def estimate(shapes: ModelShapes, steps: int | None = None, image_size: int | None = None) -> PipelineEstimate:
    return estimate_pipeline(shapes.layout, shapes.decoder, steps or shapes.defaults.steps,
                             image_size or shapes.defaults.image_size, text=shapes.text)
