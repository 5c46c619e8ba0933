"""The two block kinds a UNet layout is made of: ResNet blocks and transformer blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention, AttentionImpl, Conv1x1
from .layers import FeedForward, LayerNormANE


class ResnetBlock(nn.Module):
    """diffusers' ResnetBlock2D ("default" time-embedding shift): (B, Cin, H, W) -> (B, Cout, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, groups: int, eps: float,
                 output_scale_factor: float = 1.0):
        super().__init__()
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        """x (B, Cin, H, W); temb (B, T) -> (B, Cout, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        out = shortcut + h
        return out if self.output_scale_factor == 1.0 else out / self.output_scale_factor


class BasicTransformerBlock(nn.Module):
    """Self-attention, cross-attention and GEGLU feed-forward, each pre-normed and residual."""

    def __init__(self, dim: int, heads: int, context_dim: int, impl: AttentionImpl, upcast: bool):
        super().__init__()
        self.norm1 = LayerNormANE(dim)
        self.attn1 = Attention(dim, heads, impl=impl, upcast=upcast)
        self.norm2 = LayerNormANE(dim)
        self.attn2 = Attention(dim, heads, context_dim=context_dim, impl=impl, upcast=upcast)
        self.norm3 = LayerNormANE(dim)
        self.ff = FeedForward(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x (B, C, 1, S); context (B, D, 1, 77) -> (B, C, 1, S)."""
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class TransformerBlock(nn.Module):
    """diffusers' Transformer2DModel: GroupNorm, proj_in, `depth` BasicTransformerBlocks, proj_out,
    residual. One "CA" block of SnapFusion's Table 3."""

    def __init__(self, channels: int, heads: int, depth: int, context_dim: int, groups: int,
                 linear_projection: bool, impl: AttentionImpl, upcast: bool):
        super().__init__()
        proj = Conv1x1 if linear_projection else nn.Conv2d  # SD-2.x stores Linear weights, SD-1.x 1x1 convs
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        self.proj_in = proj(channels, channels, 1) if proj is nn.Conv2d else proj(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(channels, heads, context_dim, impl, upcast) for _ in range(depth)
        )
        self.proj_out = proj(channels, channels, 1) if proj is nn.Conv2d else proj(channels, channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W); context (B, D, 1, 77) -> (B, C, H, W)."""
        b, c, h, w = (int(n) for n in x.shape)  # plain ints: a trace records constants, not shape arithmetic
        hidden = self.proj_in(self.norm(x)).view(b, c, 1, h * w)  # BC1S: the sequence is the last axis
        for block in self.transformer_blocks:
            hidden = block(hidden, context)
        return self.proj_out(hidden.view(b, c, h, w)) + x
