"""SD's VAE encode path (Encoder + quant_conv), what image-to-image starts from.

Module attribute names are diffusers' AutoencoderKL state-dict keys (`encoder.down_blocks.0.resnets.0.*`,
`encoder.mid_block.attentions.0.to_q.*`, `quant_conv.*`), so a diffusers VAE loads with a plain
`load_state_dict` once the decoder keys are dropped. Blocks are vae_decoder.py's (the same
group-norm ResNets and single-head mid-block attention, written for coremltools).

Convention (Apple's ml-stable-diffusion VAEEncoder): the input `z` is the RGB image in [-1, 1];
the output is the posterior's moments quant_conv(encoder(z)): channels [0, C) the mean, [C, 2C)
the log-variance (diffusers' DiagonalGaussianDistribution parameters, before its clamp). Sampling
and the latent scale factor are the caller's (docs/contracts.md, image to image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import EncoderConfig
from ..errors import UserError
from ..io import write_json
from ..json_fields import read_json
from .checkpoint import load_weights, read_state_dict, save_weights
from .vae_decoder import _DEPRECATED_ATTENTION_KEYS, NORM_EPS, MidBlock, ResnetBlock2D

CONFIG_NAME = "encoder_config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
ENCODER_PREFIXES = ("encoder.", "quant_conv.")  # an AutoencoderKL's keys that belong to the encode path


class EncoderDownsample(nn.Module):
    """diffusers' Downsample2D of the VAE encoder (padding 0): pad right and bottom by one, then a
    3x3 conv with stride 2."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> (B, C, H/2, W/2) for even H, W."""
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class DownBlock(nn.Module):
    """num_resnets resnets, then an optional downsampler (diffusers' DownEncoderBlock2D)."""

    def __init__(self, in_channels: int, out_channels: int, num_resnets: int, groups: int, downsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, groups) for i in range(num_resnets)]
        )
        # diffusers has no `downsamplers` key at all on the last block; None keeps the state dict equal.
        self.downsamplers = nn.ModuleList([EncoderDownsample(out_channels)]) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
        return x


class Encoder(nn.Module):
    """diffusers' vae.Encoder with double_z: conv_in, down blocks, mid block (with attention),
    conv_norm_out, SiLU (conv_act), conv_out to 2 * latent_channels."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        channels = config.block_out_channels
        groups = config.norm_num_groups
        self.conv_in = nn.Conv2d(config.in_channels, channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            [DownBlock(channels[max(i - 1, 0)], c, config.layers_per_block, groups, downsample=i < len(channels) - 1)
             for i, c in enumerate(channels)]
        )
        self.mid_block = MidBlock(channels[-1], groups)
        self.conv_norm_out = nn.GroupNorm(groups, channels[-1], eps=NORM_EPS)
        self.conv_out = nn.Conv2d(channels[-1], 2 * config.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, in, H, W) -> (B, 2 * latent, H / 2**(n-1), W / 2**(n-1)) for n blocks."""
        x = self.conv_in(x)
        for down_block in self.down_blocks:
            x = down_block(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class VAEEncoder(nn.Module):
    """Encoder + quant_conv. For SD's 4 blocks: image (B, 3, 8h, 8w) -> moments (B, 8, h, w)."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        moments = 2 * config.latent_channels
        self.quant_conv = nn.Conv2d(moments, moments, 1) if config.use_quant_conv else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Encode images.

        Args:
            z (B, in_channels, H, W): the image in [-1, 1] (H, W multiples of the latent factor).
        Returns:
            moments (B, 2 * latent_channels, H / 8, W / 8) for SD's 4 blocks: mean, then log-variance.
        """
        moments = self.encoder(z)
        return moments if self.quant_conv is None else self.quant_conv(moments)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # --- diffusers weights ------------------------------------------------------------------------
    @classmethod
    def from_diffusers(cls, state_dict: Mapping[str, torch.Tensor], vae_config: Mapping[str, Any], source: str) -> "VAEEncoder":
        """Build from a diffusers AutoencoderKL: its config.json dict and its (full VAE) state dict.

        decoder.* and post_quant_conv.* keys are ignored; `source` names the weights file in errors.
        """
        model = cls(encoder_config_from_diffusers(vae_config, source))
        weights = {}
        for key, tensor in state_dict.items():
            if not key.startswith(ENCODER_PREFIXES):
                continue
            parts = key.split(".")
            # encoder.mid_block.attentions.0.query.weight -> ...to_q.weight (older diffusers files)
            if len(parts) == 6 and parts[:3] == ["encoder", "mid_block", "attentions"] and parts[4] in _DEPRECATED_ATTENTION_KEYS:
                key = ".".join(parts[:4] + [_DEPRECATED_ATTENTION_KEYS[parts[4]], parts[5]])
            weights[key] = tensor
        load_weights(model, weights, source)
        return model

    # --- own format -------------------------------------------------------------------------------
    def save(self, directory: str | Path, dtype: torch.dtype | None = None) -> None:
        """Write diffusion_pytorch_model.safetensors, then encoder_config.json, each atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_weights(self, directory / WEIGHTS_NAME, dtype)
        write_json(directory / CONFIG_NAME, self.config.to_dict())

    @classmethod
    def load(cls, directory: str | Path) -> "VAEEncoder":
        """Read a directory written by `save`."""
        directory = Path(directory)
        config_path = directory / CONFIG_NAME
        model = cls(EncoderConfig.from_dict(read_json(config_path, CONFIG_NAME), str(config_path)))
        weights_path = directory / WEIGHTS_NAME
        load_weights(model, read_state_dict(weights_path), str(weights_path))
        return model


def has_encoder_weights(state_dict: Mapping[str, Any]) -> bool:
    """Whether a (full VAE) state dict holds the encoder: decoder-only VAE files do not."""
    return any(key.startswith("encoder.") for key in state_dict)


def encoder_config_from_diffusers(vae_config: Mapping[str, Any], source: str) -> EncoderConfig:
    """EncoderConfig from a diffusers AutoencoderKL config.json dict; refuses encoders this module cannot build.

    Decoder-only settings (up_block_types, use_post_quant_conv, ...) and the latent scaling are ignored.
    """
    where = f" (in {source})"
    class_name = vae_config.get("_class_name", "AutoencoderKL")
    if class_name != "AutoencoderKL":
        raise UserError(f"expected an AutoencoderKL config, got _class_name {class_name!r}{where}")
    if vae_config.get("act_fn", "silu") != "silu":
        raise UserError(f"expected act_fn \"silu\", got {vae_config['act_fn']!r}{where}")
    if not vae_config.get("mid_block_add_attention", True):
        raise UserError(f"expected mid_block_add_attention true (a mid-block attention), got false{where}")
    if "block_out_channels" not in vae_config:
        raise UserError(f"expected block_out_channels in the VAE config, got keys {sorted(vae_config)}{where}")
    down_types = vae_config.get("down_block_types", ["DownEncoderBlock2D"] * len(vae_config["block_out_channels"]))
    if any(t != "DownEncoderBlock2D" for t in down_types):
        raise UserError(f"expected only DownEncoderBlock2D down blocks, got {list(down_types)}{where}")
    if len(down_types) != len(vae_config["block_out_channels"]):
        raise UserError(f"expected one down block per block_out_channels entry ({len(vae_config['block_out_channels'])}), "
                        f"got {len(down_types)}{where}")
    defaults = EncoderConfig()
    data = {
        "in_channels": vae_config.get("in_channels", defaults.in_channels),
        "latent_channels": vae_config.get("latent_channels", defaults.latent_channels),
        "block_out_channels": vae_config["block_out_channels"],
        "layers_per_block": vae_config.get("layers_per_block", defaults.layers_per_block),
        "norm_num_groups": vae_config.get("norm_num_groups", defaults.norm_num_groups),
        "use_quant_conv": bool(vae_config.get("use_quant_conv", True)),
    }
    return EncoderConfig.from_dict(data, source)
