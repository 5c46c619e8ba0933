"""Tiny seeded torch modules shaped like the SD components, for interpreter tests.

Each mirrors the op mix its full-size counterpart gives the converter: the text encoder is a
real transformers CLIPTextModel; the UNet uses (B, C, 1, S) 1x1-conv attention with per-head
split einsums, a layer norm over dim 1, group norms, a sinusoidal timestep embedding, a
stride-2 conv and a nearest upsample; the decoder uses group norm, a token-layout attention and
nearest upsampling.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class TextEncoder(nn.Module):
    """input_ids (1, S) int32 -> last_hidden_state (1, S, D), pooled_outputs (1, D)."""

    def __init__(self, vocab_size: int = 1000, hidden: int = 32, layers: int = 2, seq: int = 77):
        super().__init__()
        from transformers import CLIPTextConfig, CLIPTextModel

        config = CLIPTextConfig(
            vocab_size=vocab_size, hidden_size=hidden, intermediate_size=2 * hidden,
            num_hidden_layers=layers, num_attention_heads=4, max_position_embeddings=seq,
            hidden_act="quick_gelu", bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
            pad_token_id=vocab_size - 1,
        )
        self.model = CLIPTextModel(config).eval()

    def forward(self, input_ids: torch.Tensor):
        out = self.model(input_ids, return_dict=False)
        return out[0], out[1]


class LayerNormANE(nn.Module):
    """Layer norm over dim 1 of (B, C, 1, S), written out as reductions."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(1.0 + 0.1 * torch.randn(channels))
        self.bias = nn.Parameter(0.1 * torch.randn(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zero_mean = x - x.mean(dim=1, keepdim=True)
        denom = (zero_mean.pow(2).mean(dim=1, keepdim=True) + self.eps).rsqrt()
        return zero_mean * denom * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def split_einsum_attention(q, k, v, heads: int):
    """q (B, C, 1, Sq); k, v (B, C, 1, Sk) -> (B, C, 1, Sq), one einsum pair per head."""
    d = q.shape[1] // heads
    mh_q = [qi * d**-0.5 for qi in q.split(d, dim=1)]  # (B, d, 1, Sq)
    mh_k = k.transpose(1, 3).split(d, dim=3)  # (B, Sk, 1, d)
    mh_v = v.split(d, dim=1)  # (B, d, 1, Sk)
    out = []
    for qi, ki, vi in zip(mh_q, mh_k, mh_v):
        w = torch.einsum("bchq,bkhc->bkhq", qi, ki).softmax(dim=1)  # (B, Sk, 1, Sq)
        out.append(torch.einsum("bkhq,bchk->bchq", w, vi))  # (B, d, 1, Sq)
    return torch.cat(out, dim=1)


class Transformer(nn.Module):
    """Self-attention, cross-attention and a GEGLU feed-forward on (B, C, H, W)."""

    def __init__(self, channels: int, context_dim: int, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.norm_in = nn.GroupNorm(4, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.norm1, self.norm2, self.norm3 = (LayerNormANE(channels) for _ in range(3))
        self.q1, self.k1, self.v1 = (nn.Conv2d(channels, channels, 1, bias=False) for _ in range(3))
        self.q2 = nn.Conv2d(channels, channels, 1, bias=False)
        self.k2, self.v2 = (nn.Conv2d(context_dim, channels, 1, bias=False) for _ in range(2))
        self.out1, self.out2 = nn.Conv2d(channels, channels, 1), nn.Conv2d(channels, channels, 1)
        self.ff_in = nn.Conv2d(channels, 4 * channels, 1)
        self.ff_out = nn.Conv2d(2 * channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x, context):
        b, c, h, w = x.shape
        hs = self.proj_in(self.norm_in(x)).view(b, c, 1, h * w)  # (B, C, 1, HW)
        n = self.norm1(hs)
        hs = hs + self.out1(split_einsum_attention(self.q1(n), self.k1(n), self.v1(n), self.heads))
        n = self.norm2(hs)
        hs = hs + self.out2(split_einsum_attention(self.q2(n), self.k2(context), self.v2(context), self.heads))
        a, gate = self.ff_in(self.norm3(hs)).chunk(2, dim=1)
        hs = hs + self.ff_out(a * F.gelu(gate))
        return x + self.proj_out(hs.view(b, c, h, w))


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int | None):
        super().__init__()
        self.norm1, self.norm2 = nn.GroupNorm(4, cin), nn.GroupNorm(4, cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout) if temb else None
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.temb is not None:
            h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class UNet(nn.Module):
    """sample (B, 4, h, w), timestep (B,), encoder_hidden_states (B, D, 1, S) -> (B, 4, h, w)."""

    def __init__(self, channels: int = 16, context_dim: int = 24):
        super().__init__()
        c = channels
        self.freq = c // 2
        self.time = nn.Sequential(nn.Linear(c, 2 * c), nn.SiLU(), nn.Linear(2 * c, 2 * c))
        self.conv_in = nn.Conv2d(4, c, 3, padding=1)
        self.down_res = ResBlock(c, c, 2 * c)
        self.down = nn.Conv2d(c, c, 3, stride=2, padding=1)
        self.mid_res = ResBlock(c, 2 * c, 2 * c)
        self.mid_attn = Transformer(2 * c, context_dim)
        self.up_conv = nn.Conv2d(2 * c, c, 3, padding=1)
        self.up_res = ResBlock(2 * c, c, 2 * c)
        self.norm_out = nn.GroupNorm(4, c)
        self.conv_out = nn.Conv2d(c, 4, 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states):
        # 1. time embedding
        exponent = -math.log(10000.0) * torch.arange(self.freq, dtype=torch.float32) / self.freq
        args = timestep[:, None] * torch.exp(exponent)[None, :]
        temb = self.time(torch.cat([torch.sin(args), torch.cos(args)], dim=1))
        # 2. down
        h0 = self.conv_in(sample)
        h = self.down(self.down_res(h0, temb))
        # 3. mid
        h = self.mid_attn(self.mid_res(h, temb), encoder_hidden_states)
        # 4. up
        h = self.up_conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.up_res(torch.cat([h, h0], dim=1), temb)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """z (1, 4, h, w) -> image (1, 3, 4h, 4w) in [-1, 1]."""

    def __init__(self, channels: int = 16):
        super().__init__()
        c = channels
        self.conv_in = nn.Conv2d(4, c, 3, padding=1)
        self.res = ResBlock(c, c, None)
        self.attn_norm = nn.GroupNorm(4, c)
        self.q, self.k, self.v, self.o = (nn.Linear(c, c) for _ in range(4))
        self.up1 = nn.Conv2d(c, c, 3, padding=1)
        self.up2 = nn.Conv2d(c, c // 2, 3, padding=1)
        self.norm_out = nn.GroupNorm(4, c // 2)
        self.conv_out = nn.Conv2d(c // 2, 3, 3, padding=1)

    def forward(self, z):
        h = self.res(self.conv_in(z))
        b, c, hh, ww = h.shape
        t = self.attn_norm(h).view(b, c, hh * ww).transpose(1, 2)  # (B, HW, C)
        w = torch.softmax(self.q(t) @ self.k(t).transpose(1, 2) / math.sqrt(c), dim=-1)
        h = h + self.o(w @ self.v(t)).transpose(1, 2).reshape(b, c, hh, ww)
        h = self.up1(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.up2(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h))).clamp(-1.0, 1.0)


class Overflow(nn.Module):
    """x (1, 8) -> x * 1e3 * 1e3 / 1e6: finite in fp32, the middle value overflows fp16."""

    def forward(self, x):
        return (x * 1000.0) * 1000.0 / 1.0e6
