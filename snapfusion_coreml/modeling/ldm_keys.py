"""Original LDM/CompVis checkpoint keys -> diffusers keys (single-file SD-1.x / SD-2.x checkpoints).

One state dict holds the whole pipeline under four prefixes (Rombach et al., "High-Resolution Image
Synthesis with Latent Diffusion Models", the stable-diffusion repository's configs):

  model.diffusion_model.        the UNet (openaimodel.py: input_blocks / middle_block / output_blocks)
  first_stage_model.            the autoencoder (encoder, decoder, quant_conv, post_quant_conv)
  cond_stage_model.transformer. SD-1.x: transformers' CLIPTextModel, keys as transformers wrote them
  cond_stage_model.model.       SD-2.x: OpenCLIP ViT-H/14 (token_embedding, transformer.resblocks, ...)

Everything else (EMA copies under model_ema., the DDPM buffers betas/alphas_cumprod/...) is not
needed to generate images and is dropped; the autoencoder's encoder is read on its own
(ldm_vae_encoder_to_diffusers, for image to image). Every kept key must be
recognised: an unknown one is an error naming it, never silently ignored.

The UNet numbering is data-driven from the diffusers config (layers_per_block, block types):
input_blocks.0 is conv_in; then per level `layers_per_block` entries (.0 resnet, .1 transformer when
the level has attention) and, except after the last level, one downsampler entry (.0.op). Output
blocks hold `layers_per_block + 1` entries per level (deepest level first) with the upsampler at
.1.conv (no attention) or .2.conv (attention) of the level's last entry.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch

from ..errors import UserError

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."
OPEN_CLIP_PREFIX = "cond_stage_model.model."

_RESNET = (("in_layers.0.", "norm1."), ("in_layers.2.", "conv1."), ("emb_layers.1.", "time_emb_proj."),
           ("out_layers.0.", "norm2."), ("out_layers.3.", "conv2."), ("skip_connection.", "conv_shortcut."))
_UNET_TOP = {"time_embed.0.": "time_embedding.linear_1.", "time_embed.2.": "time_embedding.linear_2.",
             "input_blocks.0.0.": "conv_in.", "out.0.": "conv_norm_out.", "out.2.": "conv_out."}
_VAE_ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
_OPEN_CLIP_LAYER = (("ln_1.", "layer_norm1."), ("ln_2.", "layer_norm2."), ("attn.out_proj.", "self_attn.out_proj."),
                    ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2."))
# OpenCLIP tensors SD-2 does not use: the projection and temperature of the contrastive head.
_OPEN_CLIP_UNUSED = ("text_projection", "logit_scale", "attn_mask")


def checkpoint_family(state: Mapping[str, Any]) -> str:
    """"sd-v1" (CLIP text encoder) or "sd-v2" (OpenCLIP), from the keys; "" if neither is present."""
    if any(k.startswith(OPEN_CLIP_PREFIX) for k in state):
        return "sd-v2"
    if any(k.startswith(CLIP_PREFIX) for k in state):
        return "sd-v1"
    return ""


def sub_dict(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _rename(rest: str, table) -> str:
    for old, new in table:
        if rest.startswith(old):
            return new + rest[len(old):]
    return rest


def _unet_tables(cfg: Mapping[str, Any]) -> tuple[dict[int, tuple], dict[int, tuple]]:
    """input entry -> ("down", level, j) | ("downsample", level);
    output entry -> (level, j, level has attention, entry holds the level's upsampler)."""
    down_types = list(cfg["down_block_types"])
    up_types = list(cfg["up_block_types"])
    n = len(down_types)
    layers = cfg.get("layers_per_block", 2)
    layers = list(layers) if isinstance(layers, (list, tuple)) else [int(layers)] * n
    inputs: dict[int, tuple] = {}
    entry = 1
    for level in range(n):
        for j in range(layers[level]):
            inputs[entry] = ("down", level, j)
            entry += 1
        if level < n - 1:
            inputs[entry] = ("downsample", level)
            entry += 1
    outputs: dict[int, tuple] = {}
    entry = 0
    for level in range(n):
        for j in range(layers[n - 1 - level] + 1):
            outputs[entry] = (level, j, up_types[level].startswith("CrossAttn"), level < n - 1 and j == layers[n - 1 - level])
            entry += 1
    return inputs, outputs


def ldm_unet_to_diffusers(state: Mapping[str, torch.Tensor], cfg: Mapping[str, Any], source: str) -> dict[str, torch.Tensor]:
    """UNet tensors (prefix already removed) renamed to diffusers' UNet2DConditionModel keys."""
    inputs, outputs = _unet_tables(cfg)
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        new = _unet_key(key, inputs, outputs)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise UserError(f"expected UNet keys of the original LDM layout for this config, got {len(unknown)} others "
                        f"(first: {UNET_PREFIX}{sorted(unknown)[0]}) (in {source})")
    return out


def _unet_key(key: str, inputs: dict, outputs: dict) -> str | None:
    for old, new in _UNET_TOP.items():
        if key.startswith(old):
            return new + key[len(old):]
    match = re.match(r"(input_blocks|middle_block|output_blocks)\.(\d+)\.(?:(\d+)\.)?(.*)$", key)
    if not match:
        return None
    kind, entry, sub, rest = match.group(1), int(match.group(2)), match.group(3), match.group(4)
    if kind == "middle_block":  # middle_block.0 resnet, .1 transformer, .2 resnet
        if sub is not None:
            return None
        return {0: f"mid_block.resnets.0.{_rename(rest, _RESNET)}", 1: f"mid_block.attentions.0.{rest}",
                2: f"mid_block.resnets.1.{_rename(rest, _RESNET)}"}.get(entry)
    if sub is None:
        return None
    sub_index = int(sub)
    if kind == "input_blocks":
        where = inputs.get(entry)
        if where is None:
            return None
        if where[0] == "downsample":
            return f"down_blocks.{where[1]}.downsamplers.0.conv.{rest[3:]}" if sub_index == 0 and rest.startswith("op.") else None
        _, level, j = where
        if sub_index == 0:
            return f"down_blocks.{level}.resnets.{j}.{_rename(rest, _RESNET)}"
        return f"down_blocks.{level}.attentions.{j}.{rest}" if sub_index == 1 else None
    where = outputs.get(entry)
    if where is None:
        return None
    level, j, attention, upsampler = where
    if sub_index == 0:
        return f"up_blocks.{level}.resnets.{j}.{_rename(rest, _RESNET)}"
    if sub_index == 1 and attention:
        return f"up_blocks.{level}.attentions.{j}.{rest}"
    if upsampler and sub_index == (2 if attention else 1) and rest.startswith("conv."):
        return f"up_blocks.{level}.upsamplers.0.{rest}"
    return None


def ldm_vae_decoder_to_diffusers(state: Mapping[str, torch.Tensor], num_levels: int, source: str) -> dict[str, torch.Tensor]:
    """Autoencoder tensors (prefix removed) -> diffusers AutoencoderKL keys of the decoder and
    post_quant_conv; the encoder and quant_conv are dropped (generation never encodes)."""
    return _vae_half_to_diffusers(state, ("encoder.", "quant_conv.", "loss."), _vae_key, num_levels, source)


def _vae_half_to_diffusers(state: Mapping[str, torch.Tensor], dropped: tuple[str, ...], rename, num_levels: int,
                           source: str) -> dict[str, torch.Tensor]:
    """One half of the autoencoder (keys starting with `dropped` skipped) renamed by
    rename(key, num_levels); any other key is an error naming the first one."""
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if key.startswith(dropped):
            continue
        new = rename(key, num_levels)
        if new is None:
            unknown.append(key)
            continue
        if ".mid_block.attentions.0.to_" in new and new.endswith(".weight") and value.dim() == 4:
            value = value[:, :, 0, 0]  # LDM's 1x1 conv q/k/v/proj_out -> diffusers' Linear
        out[new] = value
    if unknown:
        raise UserError(f"expected autoencoder keys of the original LDM layout, got {len(unknown)} others "
                        f"(first: {VAE_PREFIX}{sorted(unknown)[0]}) (in {source})")
    return out


def _vae_key(key: str, num_levels: int) -> str | None:
    if key.startswith(("post_quant_conv.", "decoder.conv_in.", "decoder.conv_out.")):
        return key
    if key.startswith("decoder.norm_out."):
        return "decoder.conv_norm_out." + key[len("decoder.norm_out."):]
    resnet = (("nin_shortcut.", "conv_shortcut."),)
    match = re.match(r"decoder\.mid\.block_([12])\.(.*)$", key)
    if match:
        return f"decoder.mid_block.resnets.{int(match.group(1)) - 1}.{_rename(match.group(2), resnet)}"
    match = re.match(r"decoder\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)$", key)
    if match:
        return f"decoder.mid_block.attentions.0.{_VAE_ATTENTION[match.group(1)]}.{match.group(2)}"
    match = re.match(r"decoder\.up\.(\d+)\.(block\.(\d+)|upsample\.conv)\.(.*)$", key)
    if match and int(match.group(1)) < num_levels:
        level = num_levels - 1 - int(match.group(1))  # LDM counts up-levels from the highest resolution
        if match.group(3) is not None:
            return f"decoder.up_blocks.{level}.resnets.{match.group(3)}.{_rename(match.group(4), resnet)}"
        return f"decoder.up_blocks.{level}.upsamplers.0.conv.{match.group(4)}"
    return None


def ldm_vae_encoder_to_diffusers(state: Mapping[str, torch.Tensor], num_levels: int, source: str) -> dict[str, torch.Tensor]:
    """Autoencoder tensors (prefix removed) -> diffusers AutoencoderKL keys of the encoder and
    quant_conv (image to image); the decoder and post_quant_conv are dropped. LDM numbers the
    encoder's down levels as diffusers does (down.0 at full resolution)."""
    return _vae_half_to_diffusers(state, ("decoder.", "post_quant_conv.", "loss."), _vae_encoder_key, num_levels, source)


def _vae_encoder_key(key: str, num_levels: int) -> str | None:
    if key.startswith(("quant_conv.", "encoder.conv_in.", "encoder.conv_out.")):
        return key
    if key.startswith("encoder.norm_out."):
        return "encoder.conv_norm_out." + key[len("encoder.norm_out."):]
    resnet = (("nin_shortcut.", "conv_shortcut."),)
    match = re.match(r"encoder\.mid\.block_([12])\.(.*)$", key)
    if match:
        return f"encoder.mid_block.resnets.{int(match.group(1)) - 1}.{_rename(match.group(2), resnet)}"
    match = re.match(r"encoder\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)$", key)
    if match:
        return f"encoder.mid_block.attentions.0.{_VAE_ATTENTION[match.group(1)]}.{match.group(2)}"
    match = re.match(r"encoder\.down\.(\d+)\.(block\.(\d+)|downsample\.conv)\.(.*)$", key)
    if match and int(match.group(1)) < num_levels:
        level = int(match.group(1))
        if match.group(3) is not None:
            return f"encoder.down_blocks.{level}.resnets.{match.group(3)}.{_rename(match.group(4), resnet)}"
        return f"encoder.down_blocks.{level}.downsamplers.0.conv.{match.group(4)}"
    return None


def open_clip_to_transformers(state: Mapping[str, torch.Tensor], num_layers: int, source: str) -> dict[str, torch.Tensor]:
    """OpenCLIP text tower tensors (prefix removed) -> CLIPTextModel keys (no `text_model.` prefix).

    SD-2 conditions on the penultimate layer's output (then ln_final): resblocks at and after
    `num_layers` (the config's num_hidden_layers, 23 of ViT-H's 24) are dropped. in_proj_weight
    holds q, k and v stacked along the output dimension.
    """
    out: dict[str, torch.Tensor] = {}
    unknown = []
    top = {"token_embedding.weight": "embeddings.token_embedding.weight",
           "positional_embedding": "embeddings.position_embedding.weight",
           "ln_final.weight": "final_layer_norm.weight", "ln_final.bias": "final_layer_norm.bias"}
    for key, value in state.items():
        if key in top:
            out[top[key]] = value
            continue
        if key in _OPEN_CLIP_UNUSED or key.startswith("visual."):
            continue
        match = re.match(r"transformer\.resblocks\.(\d+)\.(.*)$", key)
        if not match:
            unknown.append(key)
            continue
        layer, rest = int(match.group(1)), match.group(2)
        if layer >= num_layers:
            continue
        prefix = f"encoder.layers.{layer}."
        if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
            kind = "weight" if rest.endswith("weight") else "bias"
            if value.shape[0] % 3:
                raise UserError(f"expected {key} to stack q, k and v (a multiple of 3 rows), got {tuple(value.shape)} (in {source})")
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"{prefix}self_attn.{name}.{kind}"] = part.contiguous()
            continue
        renamed = _rename(rest, _OPEN_CLIP_LAYER)
        if renamed == rest:
            unknown.append(key)
            continue
        out[prefix + renamed] = value
    if unknown:
        raise UserError(f"expected OpenCLIP text tower keys, got {len(unknown)} others "
                        f"(first: {OPEN_CLIP_PREFIX}{sorted(unknown)[0]}) (in {source})")
    return out
