"""Single-file checkpoints: one `.safetensors` (or pickle `.ckpt`) in the original LDM/CompVis key
layout, as community sites distribute fine-tuned SD-1.x / SD-2.x models.

Such a file holds weights only; the architecture comes from a base (`--base`):

  sd-v1       SD-1.x (v1-inference.yaml: CLIP ViT-L/14 text encoder, epsilon, 512 px)
  sd-v2       SD-2.x 768-v (v2-inference-v.yaml: OpenCLIP ViT-H/14, v-prediction, 768 px)
  sd-v2-base  SD-2.x base (v2-inference.yaml: OpenCLIP ViT-H/14, epsilon, 512 px)

each shipped as diffusers config files in snapfusion_coreml/bases/ (no downloads), or a folder
laid out the same way (unet/config.json, vae/config.json, text_encoder/config.json,
scheduler/scheduler_config.json, optional tokenizer/), for other architectures.
"""

from __future__ import annotations

from pathlib import Path

from ..assets import tokenizer_dir as bundled_tokenizer_dir
from ..config import UNetLayout
from ..errors import UserError
from ..json_fields import read_json
from ..pipeline import Pipeline
from ..tokenizer import load_tokenizer, pad_token
from .attention import AttentionImpl
from .checkpoint import load_new, read_state_dict
from .diffusers_config import diffusers_defaults, layout_from_diffusers_config, scheduler_from_diffusers
from .ldm_keys import (
    CLIP_PREFIX,
    OPEN_CLIP_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    checkpoint_family,
    ldm_unet_to_diffusers,
    ldm_vae_decoder_to_diffusers,
    ldm_vae_encoder_to_diffusers,
    open_clip_to_transformers,
    sub_dict,
)
from .text_encoder import build_text_encoder, load_text_encoder_state
from .unet import SnapFusionUNet
from .unet_mapping import map_unet_state
from .vae_decoder import VAEDecoder
from .vae_encoder import VAEEncoder, has_encoder_weights

BASES_DIR = Path(__file__).resolve().parents[1] / "bases"
BASES = ("sd-v1", "sd-v2", "sd-v2-base")
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def resolve_base(base: str | None, checkpoint: Path, family: str) -> Path:
    """The folder of config files for `base` (a shipped name or a folder)."""
    if not base:
        hint = f" (its keys look like {family})" if family else ""
        raise UserError(f"expected --base {' | '.join(BASES)} | FOLDER for the single-file checkpoint {checkpoint}{hint}")
    if base in BASES:
        return BASES_DIR / base
    path = Path(base)
    if not path.is_dir():
        raise UserError(f"expected --base {', '.join(BASES)} or a folder of config files, got {base!r}")
    return path


def base_label(base: str) -> str:
    """How a base is recorded in pipeline.json: its name, or a folder as an absolute path."""
    return base if base in BASES else str(Path(base).resolve())


def load_single_file(path: str | Path, base: str | None, layout: UNetLayout | None = None,
                     attention: AttentionImpl | str = AttentionImpl.SPLIT_EINSUM, allow_pickle: bool = False,
                     report: list[str] | None = None) -> Pipeline:
    """A whole pipeline from one LDM-layout checkpoint plus the configs of `base`."""
    path = Path(path)
    if path.suffix not in SINGLE_FILE_SUFFIXES:
        raise UserError(f"expected a model folder or a single-file checkpoint ({', '.join(SINGLE_FILE_SUFFIXES)}), got {path}")
    # 1. the tensors (a .ckpt nests them under "state_dict")
    state = read_state_dict(path, allow_pickle)
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    family = checkpoint_family(state)
    base_dir = resolve_base(base, path, family)
    if base in BASES and family and not base.startswith(family):
        raise UserError(f"expected a {base} checkpoint, got one whose text encoder keys are {family}'s (in {path})")
    if not any(k.startswith(UNET_PREFIX) for k in state):
        raise UserError(f"expected an LDM checkpoint with {UNET_PREFIX}* keys, found none (in {path})")
    source = str(path)

    # 2. text encoder: transformers' keys under CLIP_PREFIX (SD-1) or OpenCLIP's (SD-2)
    te_config = read_json(base_dir / "text_encoder" / "config.json", "the text encoder config")
    text_encoder = build_text_encoder(te_config)
    if any(k.startswith(OPEN_CLIP_PREFIX) for k in state):
        te_state = open_clip_to_transformers(sub_dict(state, OPEN_CLIP_PREFIX), int(te_config["num_hidden_layers"]), source)
    elif any(k.startswith(CLIP_PREFIX) for k in state):
        te_state = sub_dict(state, CLIP_PREFIX)
    else:
        raise UserError(f"expected text encoder keys under {CLIP_PREFIX} or {OPEN_CLIP_PREFIX}, found none (in {path})")
    load_text_encoder_state(text_encoder, te_state, source)

    # 3. UNet, in its own layout, then mapped onto `layout` if asked
    unet_config = read_json(base_dir / "unet" / "config.json", "the UNet config")
    own = layout_from_diffusers_config(unet_config, str(base_dir / "unet" / "config.json"))
    unet_state = ldm_unet_to_diffusers(sub_dict(state, UNET_PREFIX), unet_config, source)
    if layout is not None and layout != own:
        unet_state, mapping = map_unet_state(unet_state, own, layout, source)
        if report is not None:
            report.append(mapping.summary())
    unet = load_new(lambda: SnapFusionUNet(layout or own, attention), unet_state, source).eval()

    # 4. decoder, encoder (when the file has one), tokenizer, scheduler and the diffusers defaults
    vae_config = read_json(base_dir / "vae" / "config.json", "the VAE config")
    vae_state = ldm_vae_decoder_to_diffusers(sub_dict(state, VAE_PREFIX), len(vae_config.get("block_out_channels", ())), source)
    decoder = VAEDecoder.from_diffusers(vae_state, vae_config, source)
    levels = len(vae_config.get("block_out_channels", ()))
    vae_all = sub_dict(state, VAE_PREFIX)
    encoder = (VAEEncoder.from_diffusers(ldm_vae_encoder_to_diffusers(vae_all, levels, source), vae_config, source).eval()
               if has_encoder_weights(vae_all) else None)  # image to image; files without it still generate
    tokenizer_dir = base_dir / "tokenizer"
    has_vocab = (tokenizer_dir / "vocab.json").is_file() or (tokenizer_dir / "tokenizer.json").is_file()
    tokenizer = load_tokenizer(tokenizer_dir if has_vocab else bundled_tokenizer_dir(), pad=pad_token(tokenizer_dir))

    sched_path = base_dir / "scheduler" / "scheduler_config.json"
    scheduler_config = read_json(sched_path, "the scheduler config")
    scheduler = scheduler_from_diffusers(scheduler_config, str(sched_path))
    return Pipeline(tokenizer, text_encoder, unet, decoder.eval(), scheduler,
                    diffusers_defaults(vae_config, unet.layout, None, scheduler_config), source, scheduler_config, encoder)
