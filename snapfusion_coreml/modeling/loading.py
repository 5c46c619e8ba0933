"""Load and save whole pipelines.

Accepted MODEL forms:
  - a local diffusers folder (model_index.json, text_encoder/, tokenizer/, unet/config.json,
    vae/, scheduler/) - SD-1.x/2.x format, tokenizer as vocab.json + merges.txt or tokenizer.json;
  - a folder saved by this project (model_index.json naming SnapFusionPipeline, unet/layout.json,
    vae_decoder/, an optional vae_encoder/ (image to image), snapfusion.json with sampling defaults);
  - a hub id "hf:org/name" when a network is available (downloads only the needed files); a bare
    "org/name" only when the hub cache already holds it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .. import __version__
from ..config import PipelineDefaults, SchedulerConfig, UNetLayout
from ..errors import UserError
from ..io import atomic_directory, write_json
from ..json_fields import read_json
from ..pipeline import Pipeline
from ..tokenizer import load_tokenizer, save_tokenizer
from .attention import AttentionImpl
from .checkpoint import find_weights, load_new, read_state_dict, save_weights
from .diffusers_config import diffusers_defaults, scheduler_from_diffusers, unet_folder_layout
from .lora import TEXT_ENCODER, UNET, LoraFile, merge_lora
from .source import HUB_PREFIX, resolve_model_path  # noqa: F401  (re-exported)
from .text_encoder import load_text_encoder, text_encoder_config
from .unet import SnapFusionUNet
from .unet_mapping import map_unet_state
from .vae_decoder import VAEDecoder
from .vae_encoder import VAEEncoder, has_encoder_weights

OWN_CLASS = "SnapFusionPipeline"
__all__ = ["Pipeline", "ModelFolder", "load_pipeline", "save_pipeline", "resolve_model_path", "load_unet"]


def load_unet(directory: Path, layout: UNetLayout | None = None, attention: AttentionImpl | str = AttentionImpl.SPLIT_EINSUM,
              allow_pickle: bool = False, report: list[str] | None = None, loras: tuple[LoraFile, ...] = ()) -> SnapFusionUNet:
    """A UNet folder (ours: layout.json, diffusers: config.json) into `layout` (default: its own),
    with `loras` merged into its weights before any layout mapping."""
    own = unet_folder_layout(directory)
    weights = find_weights(directory, allow_pickle)
    state = read_state_dict(weights, allow_pickle)
    merge_lora(state, UNET, list(loras), str(weights))
    target = layout or own
    if layout is not None and layout != own:
        state, mapping = map_unet_state(state, own, layout, str(weights))
        if report is not None:
            report.append(mapping.summary())
    return load_new(lambda: SnapFusionUNet(target, attention), state, str(weights)).eval()


class ModelFolder:
    """A model folder opened for loading one component at a time.

    Opening reads only configs and the tokenizer (what pipeline.json and size checks need);
    `load(name)` reads that component's weights, merging the LoRAs given, so a caller can hold one
    component at a time (convert does; load_pipeline loads them all). The VAE encoder is optional
    (`has_encoder`): a diffusers VAE holds one unless its file is decoder-only; our folders hold
    one in vae_encoder/ when their source had one.
    """

    def __init__(self, model: str | Path, layout: UNetLayout | None = None,
                 attention: AttentionImpl | str = AttentionImpl.SPLIT_EINSUM, allow_pickle: bool = False,
                 report: list[str] | None = None, loras: tuple[LoraFile, ...] = ()):
        self.root = resolve_model_path(model)
        self.source = str(model)
        index = read_json(self.root / "model_index.json",
                          "model_index.json (a diffusers pipeline folder or one saved by snapfusion-coreml)")
        self.own = index.get("_class_name") == OWN_CLASS
        self.attention, self.allow_pickle, self.report, self.loras = AttentionImpl(attention), allow_pickle, report, loras
        self.layout = layout or unet_folder_layout(_component(self.root, "unet"))  # the UNet as it will be loaded
        self._map_to = layout
        sched_path = self.root / "scheduler" / "scheduler_config.json"
        self.scheduler_config = read_json(sched_path, "the scheduler config")
        if self.own:
            self.scheduler = SchedulerConfig.from_dict(self.scheduler_config, str(sched_path))
            defaults_path = self.root / "snapfusion.json"
            self.defaults = PipelineDefaults.from_dict(read_json(defaults_path, "the sampling defaults"), str(defaults_path))
        else:
            vae_config = read_json(_component(self.root, "vae") / "config.json", "the VAE config")
            self.scheduler = scheduler_from_diffusers(self.scheduler_config, str(sched_path))
            self.defaults = diffusers_defaults(vae_config, unet_folder_layout(_component(self.root, "unet")),
                                               index.get("_class_name"), self.scheduler_config)
        self.tokenizer = load_tokenizer(_component(self.root, "tokenizer"))

    @property
    def has_encoder(self) -> bool:
        """Whether the model has a VAE encoder (read from the folder layout and weight names only)."""
        if self.own:
            return (self.root / "vae_encoder").is_dir()
        weights = find_weights(_component(self.root, "vae"), self.allow_pickle)
        if weights.suffix != ".safetensors":
            return True  # a pickle's names cannot be read without loading it; AutoencoderKL files hold the encoder
        from safetensors import safe_open

        try:
            with safe_open(str(weights), "pt") as f:
                return has_encoder_weights(dict.fromkeys(f.keys()))
        except Exception:  # a corrupt file: loading it names the problem
            return True

    def load(self, name: str) -> torch.nn.Module:
        """One component, "text_encoder" | "unet" | "decoder" | "encoder", in eval mode (the
        encoder: a UserError when the model has none)."""
        if name == "text_encoder":
            return self._text_encoder()
        if name == "unet":
            return load_unet(_component(self.root, "unet"), self._map_to, self.attention, self.allow_pickle,
                             self.report, self.loras)
        if name == "decoder":
            if self.own:
                return VAEDecoder.load(_component(self.root, "vae_decoder")).eval()
            vae_dir = _component(self.root, "vae")
            vae_weights = find_weights(vae_dir, self.allow_pickle)
            return VAEDecoder.from_diffusers(read_state_dict(vae_weights, self.allow_pickle),
                                             read_json(vae_dir / "config.json", "the VAE config"), str(vae_weights)).eval()
        if name == "encoder":
            encoder = self._encoder()
            if encoder is None:
                raise UserError(f"expected a VAE encoder in {self.source} (image to image), found none: "
                                f"{'no vae_encoder/ folder' if self.own else 'its VAE weights hold no encoder.* tensors'}")
            return encoder
        raise ValueError(f"unknown component {name!r}")

    def _encoder(self) -> VAEEncoder | None:
        if self.own:
            directory = self.root / "vae_encoder"
            return VAEEncoder.load(directory).eval() if directory.is_dir() else None
        vae_dir = _component(self.root, "vae")
        vae_weights = find_weights(vae_dir, self.allow_pickle)
        state = read_state_dict(vae_weights, self.allow_pickle)
        if not has_encoder_weights(state):
            return None
        return VAEEncoder.from_diffusers(state, read_json(vae_dir / "config.json", "the VAE config"), str(vae_weights)).eval()

    def _text_encoder(self) -> torch.nn.Module:
        directory = _component(self.root, "text_encoder")
        model = load_text_encoder(directory, self.allow_pickle)
        if any(lora.pairs[TEXT_ENCODER] for lora in self.loras):
            state = model.state_dict()
            merge_lora(state, TEXT_ENCODER, list(self.loras), str(directory))
            model.load_state_dict(state)
        return model.eval()

    def pipeline(self) -> Pipeline:
        """Every component loaded."""
        # 1. tokenizer and text encoder, 2. UNet, 3. decoder, scheduler and sampling defaults
        text_encoder, unet, decoder = (self.load(name) for name in ("text_encoder", "unet", "decoder"))
        return Pipeline(self.tokenizer, text_encoder, unet, decoder, self.scheduler, self.defaults, self.source,
                        self.scheduler_config, self._encoder())


def load_pipeline(model: str | Path, layout: UNetLayout | None = None,
                  attention: AttentionImpl | str = AttentionImpl.SPLIT_EINSUM, allow_pickle: bool = False,
                  report: list[str] | None = None, base: str | None = None, loras: tuple[LoraFile, ...] = ()) -> Pipeline:
    """Load every component of MODEL; `layout` maps the UNet onto another layout (see unet_mapping),
    `loras` are merged into the UNet and text encoder weights (see lora.py).

    A file is a single-file LDM checkpoint whose architecture `base` names (see single_file).
    """
    if Path(model).is_file():
        from .single_file import load_single_file

        if loras:
            raise UserError(f"expected --lora with a model folder, got a single-file checkpoint {model}: "
                            "convert it to a folder first (diffusers' save_pretrained) to merge LoRAs")
        return load_single_file(model, base, layout, attention, allow_pickle, report)
    if base:
        raise UserError(f"expected a single-file checkpoint with --base {base}, got {model} (a folder or hub id carries its own configs)")
    return ModelFolder(model, layout, attention, allow_pickle, report, loras).pipeline()


def _component(root: Path, name: str) -> Path:
    path = root / name
    if not path.is_dir():
        raise UserError(f"expected a {name}/ folder in {root}, found none")
    return path


def save_pipeline(pipeline: Pipeline, out: Path, overwrite: bool = False, dtype: torch.dtype | None = None) -> None:
    """Write `pipeline` as this project's folder format, atomically (weights cast to dtype if given);
    vae_encoder/ only when the pipeline has an encoder."""
    with atomic_directory(Path(out), overwrite) as tmp:
        index = {"_class_name": OWN_CLASS, "_snapfusion_coreml_version": __version__,
                 "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
                 "unet": ["snapfusion_coreml", "SnapFusionUNet"], "vae_decoder": ["snapfusion_coreml", "VAEDecoder"]}
        if pipeline.encoder is not None:
            index["vae_encoder"] = ["snapfusion_coreml", "VAEEncoder"]
        write_json(tmp / "model_index.json", index)
        for name in ("tokenizer", "text_encoder", "unet", "scheduler"):
            (tmp / name).mkdir()
        save_tokenizer(pipeline.tokenizer, tmp / "tokenizer", special_tokens=True)
        write_json(tmp / "text_encoder" / "config.json", text_encoder_config(pipeline.text_encoder))
        save_weights(pipeline.text_encoder, tmp / "text_encoder" / "model.safetensors", dtype)
        pipeline.unet.layout.save(tmp / "unet" / "layout.json")
        save_weights(pipeline.unet, tmp / "unet" / "diffusion_pytorch_model.safetensors", dtype)
        pipeline.decoder.save(tmp / "vae_decoder", dtype)
        if pipeline.encoder is not None:
            pipeline.encoder.save(tmp / "vae_encoder", dtype)
        # the model's own sampler (a diffusers class and its fields) stays with it
        write_json(tmp / "scheduler" / "scheduler_config.json", {**(pipeline.scheduler_config or {}), **pipeline.scheduler.to_dict()})
        write_json(tmp / "snapfusion.json", pipeline.defaults.to_dict())

