"""Small building blocks shared by the UNet: LayerNormANE, GEGLU feed-forward, timestep embedding,
resampling convs. Attribute names follow diffusers so SD checkpoints load unchanged."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Conv1x1


class LayerNormANE(nn.Module):
    """LayerNorm over the channel axis of (B, C, 1, S) tensors.

    The Neural Engine keeps the last axis contiguous, so normalising over dim 1 of BC1S avoids the
    transposes a standard LayerNorm over the last axis would need. Same parameters as nn.LayerNorm.
    """

    def __init__(self, num_channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, 1, S) -> (B, C, 1, S)."""
        zero_mean = x - x.mean(dim=1, keepdim=True)
        denom = (zero_mean.pow(2).mean(dim=1, keepdim=True) + self.eps).rsqrt()
        return zero_mean * denom * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class GEGLU(nn.Module):
    """diffusers' GEGLU: proj to 2x inner channels, value * gelu(gate)."""

    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = Conv1x1(dim, inner * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=1)  # channels hold diffusers' last axis
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """ff.net.0 (GEGLU), ff.net.1 (dropout, identity at inference), ff.net.2 (projection)."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.ModuleList([GEGLU(dim, dim * mult), nn.Identity(), Conv1x1(dim * mult, dim)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            x = layer(x)
        return x


def timestep_embedding(timesteps: torch.Tensor, dim: int, flip_sin_to_cos: bool, freq_shift: float,
                       max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (B,) timesteps -> (B, dim), as diffusers' Timesteps."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / (half - freq_shift)
    args = timesteps.float()[:, None] * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return emb


class TimestepEmbedding(nn.Module):
    """linear_1 -> SiLU -> linear_2 (diffusers' names). With `cond_proj_dim` (full LCM UNets'
    `time_cond_proj_dim`) a guidance embedding (B, cond_proj_dim) is projected by `cond_proj` and
    added to the input first, as diffusers' TimestepEmbedding does."""

    def __init__(self, in_dim: int, dim: int, cond_proj_dim: int | None = None):
        super().__init__()
        self.linear_1 = nn.Linear(in_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)
        if cond_proj_dim is not None:
            self.cond_proj = nn.Linear(cond_proj_dim, in_dim, bias=False)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        if condition is not None:
            x = x + self.cond_proj(condition)
        return self.linear_2(F.silu(self.linear_1(x)))


class Downsample(nn.Module):
    """3x3 conv with stride 2 (diffusers' Downsample2D, padding 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 conv (diffusers' Upsample2D)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
