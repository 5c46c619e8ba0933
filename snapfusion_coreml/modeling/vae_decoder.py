"""SD's VAE decode path (post_quant_conv + Decoder) with a channel width multiplier.

Module attribute names are diffusers' AutoencoderKL state-dict keys (`post_quant_conv.*`,
`decoder.mid_block.attentions.0.to_q.*`, ...), so a diffusers VAE loads with a plain
`load_state_dict` once the encoder keys are dropped. width_multiplier 0.5 is SnapFusion's slim
decoder (paper Sec. 3.2: 50M -> 13M parameters); `decoder_pruning.prune_decoder` initialises it
from a full one.

Convention (Apple's ml-stable-diffusion): the input `z` is the latent already divided by the
VAE's scaling factor (0.18215 for SD-v1.x); the output is the image in roughly [-1, 1], unclamped.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import DecoderConfig
from ..errors import UserError
from ..io import write_json
from ..json_fields import read_json
from .checkpoint import load_weights, read_state_dict, save_weights
from .layers import Upsample

CONFIG_NAME = "decoder_config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
NORM_EPS = 1e-6  # every GroupNorm of diffusers' VAE decoder

# diffusers VAEs saved before its attention refactor use these names for the mid-block attention.
_DEPRECATED_ATTENTION_KEYS = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


class ResnetBlock2D(nn.Module):
    """diffusers' ResnetBlock2D without a time embedding: x + conv2(silu(norm2(conv1(silu(norm1(x)))))).

    The shortcut is a 1x1 conv only when the channel count changes.
    """

    def __init__(self, in_channels: int, out_channels: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=NORM_EPS)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=NORM_EPS)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1)
        else:
            self.conv_shortcut = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, H, W) -> (B, C_out, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class SpatialSelfAttention(nn.Module):
    """Single-head self-attention over the H*W positions, with group norm and a residual.

    Plain linear/bmm/softmax so coremltools converts it without an SDPA lowering. q is scaled
    before the q k^T product, so the logits never exceed the scaled range (fp16-friendlier).
    """

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=NORM_EPS)
        self.to_q = nn.Linear(channels, channels)
        self.to_k = nn.Linear(channels, channels)
        self.to_v = nn.Linear(channels, channels)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels)])  # "to_out.0", as in diffusers
        self.scale = 1.0 / math.sqrt(channels)  # one head of dim C

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> (B, C, H, W)."""
        b, c, height, width = x.shape
        # 1. normalise and flatten to tokens
        h = self.group_norm(x).view(b, c, height * width).transpose(1, 2)  # (B, S, C)
        # 2. projections
        q = self.to_q(h) * self.scale  # (B, S, C)
        k = self.to_k(h)  # (B, S, C)
        v = self.to_v(h)  # (B, S, C)
        # 3. attention
        weights = torch.softmax(torch.bmm(q, k.transpose(1, 2)), dim=-1)  # (B, S, S)
        h = torch.bmm(weights, v)  # (B, S, C)
        # 4. output projection and residual
        h = self.to_out[0](h).transpose(1, 2).reshape(b, c, height, width)
        return x + h


class MidBlock(nn.Module):
    """resnet -> attention -> resnet at the latent resolution (diffusers' UNetMidBlock2D)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, groups) for _ in range(2)])
        self.attentions = nn.ModuleList([SpatialSelfAttention(channels, groups)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, h, w) -> (B, C, h, w)."""
        x = self.resnets[0](x)
        x = self.attentions[0](x)
        return self.resnets[1](x)


class UpBlock(nn.Module):
    """num_resnets resnets, then an optional upsampler (diffusers' UpDecoderBlock2D)."""

    def __init__(self, in_channels: int, out_channels: int, num_resnets: int, groups: int, upsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, groups) for i in range(num_resnets)]
        )
        # diffusers has no `upsamplers` key at all on the last block; None keeps the state dict equal.
        self.upsamplers = nn.ModuleList([Upsample(out_channels)]) if upsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, H, W) -> (B, C_out, 2H, 2W) with an upsampler, else (B, C_out, H, W)."""
        for resnet in self.resnets:
            x = resnet(x)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class Decoder(nn.Module):
    """diffusers' vae.Decoder with group norms (no spatial norm, no time embedding)."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        channels = list(reversed(config.channels))  # deepest first: (512, 512, 256, 128) for SD
        groups = config.norm_num_groups
        self.conv_in = nn.Conv2d(config.latent_channels, channels[0], 3, padding=1)
        self.mid_block = MidBlock(channels[0], groups)
        self.up_blocks = nn.ModuleList(
            [
                UpBlock(channels[max(i - 1, 0)], c, config.layers_per_block + 1, groups, upsample=i < len(channels) - 1)
                for i, c in enumerate(channels)
            ]
        )
        self.conv_norm_out = nn.GroupNorm(groups, channels[-1], eps=NORM_EPS)
        self.conv_out = nn.Conv2d(channels[-1], config.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent, h, w) -> (B, out, h * 2**(n-1), w * 2**(n-1)) for n blocks."""
        x = self.conv_in(z)
        x = self.mid_block(x)
        for up_block in self.up_blocks:
            x = up_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class VAEDecoder(nn.Module):
    """post_quant_conv + Decoder. For SD's 4 blocks: z (B, 4, h, w) -> image (B, 3, 8h, 8w)."""

    def __init__(self, config: DecoderConfig):
        super().__init__()
        _validate(config, "decoder config")
        self.config = config
        self.post_quant_conv = nn.Conv2d(config.latent_channels, config.latent_channels, 1)
        self.decoder = Decoder(config)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Decode latents.

        Args:
            z (B, latent_channels, h, w): latents already divided by the VAE scaling factor.
        Returns:
            image (B, out_channels, 8h, 8w) for SD's 4 blocks, roughly in [-1, 1] (not clamped).
        """
        # 1. latent-space 1x1 conv (the "post quantisation" conv of the KL autoencoder)
        z = self.post_quant_conv(z)
        # 2. conv_in -> mid block -> up blocks -> norm, SiLU, conv_out
        return self.decoder(z)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # --- diffusers weights ------------------------------------------------------------------------
    @classmethod
    def from_diffusers(cls, state_dict: Mapping[str, torch.Tensor], vae_config: Mapping[str, Any], source: str) -> "VAEDecoder":
        """Build from a diffusers AutoencoderKL: its config.json dict and its (full VAE) state dict.

        encoder.* and quant_conv.* keys are ignored; `source` names the weights file in errors.
        """
        config = decoder_config_from_diffusers(vae_config, source)
        model = cls(config)
        weights = {}
        for key, tensor in state_dict.items():
            if key.startswith(("encoder.", "quant_conv.")):
                continue
            parts = key.split(".")
            # decoder.mid_block.attentions.0.query.weight -> ...to_q.weight (older diffusers files)
            if len(parts) == 6 and parts[:3] == ["decoder", "mid_block", "attentions"] and parts[4] in _DEPRECATED_ATTENTION_KEYS:
                key = ".".join(parts[:4] + [_DEPRECATED_ATTENTION_KEYS[parts[4]], parts[5]])
            weights[key] = tensor
        load_weights(model, weights, source)
        return model

    # --- own format -------------------------------------------------------------------------------
    def save(self, directory: str | Path, dtype: torch.dtype | None = None) -> None:
        """Write diffusion_pytorch_model.safetensors, then decoder_config.json, each atomically.

        Weights first: a config never sits beside weights from another model.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_weights(self, directory / WEIGHTS_NAME, dtype)
        write_json(directory / CONFIG_NAME, self.config.to_dict())

    @classmethod
    def load(cls, directory: str | Path) -> "VAEDecoder":
        """Read a directory written by `save`."""
        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        model = cls(DecoderConfig.from_dict(read_json(config_path, CONFIG_NAME), str(config_path)))
        weights_path = directory / WEIGHTS_NAME
        load_weights(model, read_state_dict(weights_path), str(weights_path))
        return model


def decoder_config_from_diffusers(vae_config: Mapping[str, Any], source: str) -> DecoderConfig:
    """DecoderConfig from a diffusers AutoencoderKL config.json dict; refuses decoders this module cannot build.

    Settings that only concern the encoder or the latent scaling (scaling_factor, shift_factor,
    force_upcast, use_quant_conv, down_block_types, sample_size) are ignored.
    """
    where = f" (in {source})"
    class_name = vae_config.get("_class_name", "AutoencoderKL")
    if class_name != "AutoencoderKL":
        raise UserError(f"expected an AutoencoderKL config, got _class_name {class_name!r}{where}")
    if vae_config.get("act_fn", "silu") != "silu":
        raise UserError(f"expected act_fn \"silu\", got {vae_config['act_fn']!r}{where}")
    if not vae_config.get("mid_block_add_attention", True):
        raise UserError(f"expected mid_block_add_attention true (a mid-block attention), got false{where}")
    if not vae_config.get("use_post_quant_conv", True):
        raise UserError(f"expected use_post_quant_conv true, got false{where}")
    up_types = vae_config.get("up_block_types", ["UpDecoderBlock2D"] * len(vae_config.get("block_out_channels", [])))
    if any(t != "UpDecoderBlock2D" for t in up_types):
        raise UserError(f"expected only UpDecoderBlock2D up blocks, got {list(up_types)}{where}")
    if "block_out_channels" not in vae_config:
        raise UserError(f"expected block_out_channels in the VAE config, got keys {sorted(vae_config)}{where}")
    if len(up_types) != len(vae_config["block_out_channels"]):
        raise UserError(f"expected one up block per block_out_channels entry ({len(vae_config['block_out_channels'])}), got {len(up_types)}{where}")
    defaults = DecoderConfig()
    data = {
        "latent_channels": vae_config.get("latent_channels", defaults.latent_channels),
        "out_channels": vae_config.get("out_channels", defaults.out_channels),
        "block_out_channels": vae_config["block_out_channels"],
        "layers_per_block": vae_config.get("layers_per_block", defaults.layers_per_block),
        "norm_num_groups": vae_config.get("norm_num_groups", defaults.norm_num_groups),
        "width_multiplier": 1.0,
    }
    config = DecoderConfig.from_dict(data, source)
    _validate(config, source)
    return config


def _validate(config: DecoderConfig, source: str) -> None:
    where = f" (in {source})"
    if not config.block_out_channels:
        raise UserError(f"expected at least one entry in block_out_channels, got none{where}")
    if config.layers_per_block < 0 or config.latent_channels <= 0 or config.out_channels <= 0:
        raise UserError(f"expected positive channel counts and layers_per_block >= 0, got {dataclasses.asdict(config)}{where}")
    if not 0.0 < config.width_multiplier <= 1.0:
        raise UserError(f"expected width_multiplier in (0, 1], got {config.width_multiplier}{where}")
    for c in config.channels:
        if c <= 0 or c % config.norm_num_groups:
            raise UserError(
                f"expected decoder channels that are multiples of norm_num_groups={config.norm_num_groups}, "
                f"got {config.channels} (width_multiplier {config.width_multiplier}){where}"
            )
