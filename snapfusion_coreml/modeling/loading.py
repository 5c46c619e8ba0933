"""Load and save whole pipelines.

Accepted MODEL forms:
  - a local diffusers folder (model_index.json, text_encoder/, tokenizer/, unet/config.json,
    vae/, scheduler/) - SD-1.x/2.x format, tokenizer as vocab.json + merges.txt or tokenizer.json;
  - a folder saved by this project (model_index.json naming SnapFusionPipeline, unet/layout.json,
    vae_decoder/, snapfusion.json with sampling defaults);
  - a hub id "hf:org/name" when a network is available (downloads only the needed files); a bare
    "org/name" only when the hub cache already holds it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .. import __version__
from ..config import PipelineDefaults, SchedulerConfig, UNetLayout, load_layout
from ..errors import UserError
from ..io import atomic_directory, read_json, write_json
from ..pipeline import Pipeline
from ..tokenizer import load_tokenizer, save_tokenizer
from .attention import AttentionImpl
from .checkpoint import find_weights, load_weights, read_state_dict, save_weights
from .diffusers_config import diffusers_defaults, layout_from_diffusers_config, scheduler_from_diffusers
from .source import HUB_PREFIX, resolve_model_path  # noqa: F401  (re-exported)
from .text_encoder import load_text_encoder, text_encoder_config
from .unet import SnapFusionUNet
from .unet_mapping import map_unet_state
from .vae_decoder import VAEDecoder

OWN_CLASS = "SnapFusionPipeline"
__all__ = ["Pipeline", "load_pipeline", "save_pipeline", "resolve_model_path", "load_unet"]


def load_unet(directory: Path, layout: UNetLayout | None = None, attention: AttentionImpl | str = AttentionImpl.SPLIT_EINSUM,
              allow_pickle: bool = False, report: list[str] | None = None) -> SnapFusionUNet:
    """A UNet folder (ours: layout.json, diffusers: config.json) into `layout` (default: its own)."""
    if (directory / "layout.json").is_file():
        own = load_layout(directory / "layout.json")
    else:
        own = layout_from_diffusers_config(read_json(directory / "config.json", "the UNet config"), str(directory / "config.json"))
    weights = find_weights(directory, allow_pickle)
    state = read_state_dict(weights, allow_pickle)
    target = layout or own
    if layout is not None and layout != own:
        state, mapping = map_unet_state(state, own, layout, str(weights))
        if report is not None:
            report.append(mapping.summary())
    unet = SnapFusionUNet(target, attention).eval()
    load_weights(unet, state, str(weights))
    return unet


def load_pipeline(model: str | Path, layout: UNetLayout | None = None,
                  attention: AttentionImpl | str = AttentionImpl.SPLIT_EINSUM, allow_pickle: bool = False,
                  report: list[str] | None = None, base: str | None = None) -> Pipeline:
    """Load every component of MODEL; `layout` maps the UNet onto another layout (see unet_mapping).

    A file is a single-file LDM checkpoint whose architecture `base` names (see single_file).
    """
    if Path(model).is_file():
        from .single_file import load_single_file

        return load_single_file(model, base, layout, attention, allow_pickle, report)
    if base:
        raise UserError(f"expected a single-file checkpoint with --base {base}, got {model} (a folder or hub id carries its own configs)")
    root = resolve_model_path(model)
    index = read_json(root / "model_index.json", "model_index.json (a diffusers pipeline folder or one saved by snapfusion-coreml)")
    own = index.get("_class_name") == OWN_CLASS

    # 1. tokenizer and text encoder
    tokenizer = load_tokenizer(_component(root, "tokenizer"))
    text_encoder = load_text_encoder(_component(root, "text_encoder"), allow_pickle)
    # 2. UNet
    unet = load_unet(_component(root, "unet"), layout, attention, allow_pickle, report)
    # 3. decoder, scheduler and sampling defaults
    if own:
        decoder = VAEDecoder.load(_component(root, "vae_decoder"))
        scheduler = SchedulerConfig.from_dict(read_json(root / "scheduler" / "scheduler_config.json", "the scheduler config"),
                                              str(root / "scheduler" / "scheduler_config.json"))
        defaults = PipelineDefaults.from_dict(read_json(root / "snapfusion.json", "the sampling defaults"))
    else:
        vae_dir = _component(root, "vae")
        vae_config = read_json(vae_dir / "config.json", "the VAE config")
        vae_weights = find_weights(vae_dir, allow_pickle)
        decoder = VAEDecoder.from_diffusers(read_state_dict(vae_weights, allow_pickle), vae_config, str(vae_weights))
        sched_path = root / "scheduler" / "scheduler_config.json"
        scheduler = scheduler_from_diffusers(read_json(sched_path, "the scheduler config"), str(sched_path))
        defaults = diffusers_defaults(vae_config, unet.layout)
    return Pipeline(tokenizer, text_encoder, unet, decoder.eval(), scheduler, defaults, str(model))


def _component(root: Path, name: str) -> Path:
    path = root / name
    if not path.is_dir():
        raise UserError(f"expected a {name}/ folder in {root}, found none")
    return path


def save_pipeline(pipeline: Pipeline, out: Path, overwrite: bool = False, dtype: torch.dtype | None = None) -> None:
    """Write `pipeline` as this project's folder format, atomically (weights cast to dtype if given)."""
    with atomic_directory(Path(out), overwrite) as tmp:
        write_json(tmp / "model_index.json", {"_class_name": OWN_CLASS, "_snapfusion_coreml_version": __version__,
                                              "text_encoder": ["transformers", "CLIPTextModel"],
                                              "tokenizer": ["transformers", "CLIPTokenizer"],
                                              "unet": ["snapfusion_coreml", "SnapFusionUNet"],
                                              "vae_decoder": ["snapfusion_coreml", "VAEDecoder"]})
        for name in ("tokenizer", "text_encoder", "unet", "scheduler"):
            (tmp / name).mkdir()
        save_tokenizer(pipeline.tokenizer, tmp / "tokenizer", special_tokens=True)
        write_json(tmp / "text_encoder" / "config.json", text_encoder_config(pipeline.text_encoder))
        save_weights(pipeline.text_encoder, tmp / "text_encoder" / "model.safetensors", dtype)
        pipeline.unet.layout.save(tmp / "unet" / "layout.json")
        save_weights(pipeline.unet, tmp / "unet" / "diffusion_pytorch_model.safetensors", dtype)
        pipeline.decoder.save(tmp / "vae_decoder", dtype)
        write_json(tmp / "scheduler" / "scheduler_config.json", pipeline.scheduler.to_dict())
        write_json(tmp / "snapfusion.json", pipeline.defaults.to_dict())

