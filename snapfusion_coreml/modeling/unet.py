"""A UNet whose architecture is data: a `UNetLayout` (per stage, an ordered block list).

Module names are diffusers' (down_blocks.{i}.resnets.{j}, ...attentions.{j}, mid_block, up_blocks,
conv_in, time_embedding, conv_norm_out, conv_out), so an SD-v1.5 checkpoint loads into the
SD-v1.5 layout as-is (Linear weights reshaped to 1x1 convs at load, see checkpoint.py).
Attention blocks run in the Neural Engine's (B, C, 1, S) layout; the implementation is chosen
at construction.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import RESNET, BlockSpec, UNetLayout, plan_blocks
from .attention import AttentionImpl
from .blocks import ResnetBlock, TransformerBlock
from .layers import Downsample, TimestepEmbedding, Upsample, timestep_embedding


class Stage(nn.Module):
    """One stage's blocks (diffusers' resnets / attentions lists) and its resampler."""

    def __init__(self, layout: UNetLayout, specs: list[BlockSpec], impl: AttentionImpl, width: int,
                 resample: str | None, resnet_scale: float = 1.0):
        super().__init__()
        temb = layout.time_embed_dim
        groups, eps = layout.norm_num_groups, layout.norm_eps
        self.resnets = nn.ModuleList(
            ResnetBlock(s.in_channels, s.out_channels, temb, groups, eps, resnet_scale) for s in specs if s.kind == RESNET
        )
        self.attentions = nn.ModuleList(
            TransformerBlock(s.out_channels, s.heads, s.depth, layout.cross_attention_dim, groups,
                             layout.use_linear_projection, impl, layout.upcast_attention)
            for s in specs if s.kind != RESNET
        )
        if resample == "down":
            self.downsamplers = nn.ModuleList([Downsample(width)])
        elif resample == "up":
            self.upsamplers = nn.ModuleList([Upsample(width)])


class SnapFusionUNet(nn.Module):
    """UNet2DConditionModel-compatible denoiser for any `UNetLayout`.

    forward(sample (B, 4, H, W), timestep (B,), encoder_hidden_states (B, D, 1, 77)
    [, timestep_cond (B, layout.time_cond_proj_dim)]) -> (B, 4, H, W), the model's raw prediction
    (epsilon or v). H and W must be multiples of layout.latent_divisor.
    """

    def __init__(self, layout: UNetLayout, attention: AttentionImpl | str = AttentionImpl.SPLIT_EINSUM):
        super().__init__()
        layout.validate()
        self.layout = layout
        self.attention = AttentionImpl(attention)
        self.plan = plan_blocks(layout)
        c0, n = layout.down[0].width, layout.num_levels

        # 1. time embedding, 2. conv_in
        self.time_embedding = TimestepEmbedding(c0, layout.time_embed_dim, layout.time_cond_proj_dim)
        self.conv_in = nn.Conv2d(layout.in_channels, c0, 3, padding=1)

        # 3. stages; a stage with no blocks keeps the incoming channel count
        by_stage: dict[str, list[BlockSpec]] = {}
        for spec in self.plan:
            by_stage.setdefault(spec.stage, []).append(spec)

        def make(name: str, resample: str | None, scale: float = 1.0) -> Stage:
            return Stage(layout, by_stage.get(name, []), self.attention, layout.stage(name).width, resample, scale)

        self.down_blocks = nn.ModuleList(make(f"down_blocks.{i}", "down" if i < n - 1 else None) for i in range(n))
        self.mid_block = make("mid_block", None, layout.mid_scale_factor)
        self.up_blocks = nn.ModuleList(make(f"up_blocks.{i}", "up" if i < n - 1 else None) for i in range(n))

        # 4. output head
        c_last = layout.up[-1].width
        self.conv_norm_out = nn.GroupNorm(layout.norm_num_groups, c_last, eps=layout.norm_eps)
        self.conv_out = nn.Conv2d(c_last, layout.out_channels, 3, padding=1)

        self._stage_plan = [(name, level, by_stage.get(name, [])) for name, _, level in layout.stages()]

    def block_names(self) -> list[str]:
        return [spec.name for spec in self.plan]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                skip_blocks: frozenset[str] = frozenset(), timestep_cond: torch.Tensor | None = None) -> torch.Tensor:
        """skip_blocks: names of blocks (BlockSpec.name) that act as identity in this call;
        timestep_cond: the guidance embedding (schedule.guidance_embedding), for UNets that have one."""
        layout = self.layout
        # 1. time embedding
        t_emb = timestep_embedding(timestep.reshape(-1).expand(sample.shape[0]), layout.down[0].width,
                                   layout.flip_sin_to_cos, layout.freq_shift)
        if (timestep_cond is None) != (layout.time_cond_proj_dim is None):
            raise ValueError(f"timestep_cond is {'required' if timestep_cond is None else 'not taken'} by this UNet "
                             f"(time_cond_proj_dim={layout.time_cond_proj_dim})")
        cond = None if timestep_cond is None else timestep_cond.to(sample.dtype).expand(sample.shape[0], -1)
        temb = self.time_embedding(t_emb.to(sample.dtype), cond)

        # 2. pre-process
        h = self.conv_in(sample)
        skips: dict[int, list[torch.Tensor]] = {level: [] for level in range(layout.num_levels)}
        skips[0].append(h)

        # 3. down, mid and up stages following the layout's plan
        for name, level, specs in self._stage_plan:
            stage: Stage = self.get_submodule(name)
            for spec in specs:
                skip = skips[level].pop() if spec.skip_channels else None
                if spec.name not in skip_blocks:
                    if spec.kind == RESNET:
                        block_input = h if skip is None else torch.cat([h, skip], dim=1)
                        h = stage.resnets[spec.index](block_input, temb)
                    else:
                        h = stage.attentions[spec.index](h, encoder_hidden_states)
                if spec.push_skip:
                    skips[level].append(h)
            if hasattr(stage, "downsamplers"):
                h = stage.downsamplers[0](h)
                skips[level + 1].append(h)
            elif hasattr(stage, "upsamplers"):
                h = stage.upsamplers[0](h)

        # 4. post-process
        return self.conv_out(F.silu(self.conv_norm_out(h)))


def unet_parameters(layout: UNetLayout) -> int:
    """Parameter count of a UNet of `layout`, built on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        return SnapFusionUNet(layout).num_parameters()
