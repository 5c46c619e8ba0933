"""Tiny seeded SD-format models written to disk the way other tools and versions wrote them.

The files are written from raw state dicts here (safetensors.save_file / torch.save with renamed
keys and dtypes), not by the installed libraries' own save functions, so a test sees what
transformers 4.x / diffusers 0.x put on the Hub, whatever versions are installed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

from snapfusion_coreml.assets import tokenizer_dir
from snapfusion_coreml.modeling.factory import TINY_TEXT

TEXT_MODEL = "text_model."
# diffusers < 0.15 named the VAE mid-block attention's tensors like this.
LEGACY_VAE_ATTENTION = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn", "group_norm": "group_norm"}


def seeded(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.05
    return module.eval()


def unet_config(sd2: bool = False, pruned: bool = False, sample_size: int = 8) -> dict:
    """A tiny UNet2DConditionModel config: SD-1 style, SD-2 style (per-block heads, linear
    projections, upcast attention) or BK-SDM style (no mid block, one layer per block)."""
    cfg = dict(block_out_channels=[32, 64], down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
               up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], cross_attention_dim=TINY_TEXT["hidden_size"],
               attention_head_dim=2, norm_num_groups=8, sample_size=sample_size, layers_per_block=2)
    if sd2:
        cfg.update(attention_head_dim=[2, 4], use_linear_projection=True, upcast_attention=True)
    if pruned:
        cfg.update(mid_block_type=None, layers_per_block=1)
    return cfg


VAE_CONFIG = dict(block_out_channels=[8, 16, 16, 16], down_block_types=["DownEncoderBlock2D"] * 4,
                  up_block_types=["UpDecoderBlock2D"] * 4, norm_num_groups=8, layers_per_block=1)


def tiny_models(seed: int = 0, unet_cfg: dict | None = None, text_cfg: dict | None = None):
    """(UNet2DConditionModel, AutoencoderKL, CLIPTextModel) with seeded N(0, 0.05) weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = seeded(UNet2DConditionModel(**(unet_cfg or unet_config())), seed)
    vae = seeded(AutoencoderKL(**VAE_CONFIG), seed + 1)
    text = seeded(CLIPTextModel(CLIPTextConfig(**(text_cfg or TINY_TEXT))), seed + 2)
    return unet, vae, text


def bare_text_state(text: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The CLIP tower's tensors without the `text_model.` prefix, whatever transformers is installed."""
    return {k[len(TEXT_MODEL):] if k.startswith(TEXT_MODEL) else k: v.detach().clone()
            for k, v in text.state_dict().items() if not k.endswith("position_ids")}


def text_state(text: torch.nn.Module, prefix: bool = True, position_ids: bool = True) -> dict[str, torch.Tensor]:
    """As transformers 4.x wrote it (`text_model.` prefix, an int64 position_ids buffer) or not."""
    state = {(TEXT_MODEL if prefix else "") + k: v for k, v in bare_text_state(text).items()}
    if position_ids:
        n = text.config.max_position_embeddings
        state[(TEXT_MODEL if prefix else "") + "embeddings.position_ids"] = torch.arange(n, dtype=torch.int64)[None]
    return state


def write_weights(state: dict[str, torch.Tensor], path: Path, fp16: bool = False) -> None:
    if fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    state = {k: v.contiguous() for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        save_file(state, str(path), metadata={"format": "pt"})
    else:
        torch.save(state, path)


def write_config(path: Path, config: dict, class_name: str, version_key: str, version: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"_class_name": class_name, version_key: version, **config}, indent=2))


def write_sd_folder(root: Path, unet, vae, text, *, te_file: str = "model.safetensors", te_prefix: bool = True,
                    te_position_ids: bool = True, unet_file: str = "diffusion_pytorch_model.safetensors",
                    vae_file: str = "diffusion_pytorch_model.safetensors", legacy_vae_attention: bool = False,
                    unet_cfg: dict | None = None, scheduler: dict | None = None, extra_index: dict | None = None,
                    tokenizer_settings: dict[str, dict] | None = None) -> Path:
    """A diffusers folder as diffusers 0.30 / transformers 4.x wrote it (variants by argument)."""
    root.mkdir(parents=True)
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
             "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"], **(extra_index or {})}
    (root / "model_index.json").write_text(json.dumps(index, indent=2))
    # 1. text encoder
    te_cfg = {k: v for k, v in text.config.to_dict().items() if not k.startswith("_") and k != "transformers_version"}
    te_cfg.update(architectures=["CLIPTextModel"], model_type="clip_text_model")
    (root / "text_encoder").mkdir()
    (root / "text_encoder" / "config.json").write_text(json.dumps({**te_cfg, "transformers_version": "4.44.2"}, indent=2))
    write_weights(text_state(text, te_prefix, te_position_ids), root / "text_encoder" / te_file, fp16=".fp16." in te_file)
    # 2. UNet and VAE
    write_config(root / "unet" / "config.json", unet_cfg or unet_config(), "UNet2DConditionModel", "_diffusers_version", "0.30.0")
    write_weights(dict(unet.state_dict()), root / "unet" / unet_file, fp16=".fp16." in unet_file)
    vae_state = dict(vae.state_dict())
    if legacy_vae_attention:
        vae_state = {_legacy_vae_key(k): v for k, v in vae_state.items()}
    write_config(root / "vae" / "config.json", VAE_CONFIG, "AutoencoderKL", "_diffusers_version", "0.30.0")
    write_weights(vae_state, root / "vae" / vae_file, fp16=".fp16." in vae_file)
    # 3. tokenizer (CLIP BPE files + transformers 4.x settings files) and scheduler
    shutil.copytree(tokenizer_dir(), root / "tokenizer")
    for name, data in (tokenizer_settings or {}).items():
        (root / "tokenizer" / name).write_text(json.dumps(data, indent=2))
    sched = scheduler or {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1,
                          "num_train_timesteps": 1000, "prediction_type": "epsilon", "clip_sample": False,
                          "set_alpha_to_one": False}
    write_config(root / "scheduler" / "scheduler_config.json", sched, "DDIMScheduler", "_diffusers_version", "0.30.0")
    return root


def _legacy_vae_key(key: str) -> str:
    prefix = "decoder.mid_block.attentions.0."
    for part in ("encoder.mid_block.attentions.0.", prefix):
        if key.startswith(part):
            rest = key[len(part):]
            for new, old in LEGACY_VAE_ATTENTION.items():
                if rest.startswith(new + "."):
                    return part + old + rest[len(new):]
    return key
