"""Build pipelines with seeded random weights: tiny ones for tests, small ones for the bundled
demo, full-size ones for benchmarks. Nothing is downloaded."""

from __future__ import annotations

from typing import Any

import torch

from ..assets import tokenizer_dir
from ..config import (
    DecoderConfig,
    LayoutPairing,
    PipelineDefaults,
    SchedulerConfig,
    StageLayout,
    UNetLayout,
    resolve_layout,
)
from ..pipeline import Pipeline
from ..tokenizer import load_tokenizer
from .attention import AttentionImpl
from .text_encoder import build_text_encoder
from .unet import SnapFusionUNet
from .vae_decoder import VAEDecoder

# CLIP ViT-L/14's text tower, SD-v1.5's text encoder (123M parameters).
CLIP_L14_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                     num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                     projection_dim=768, bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
TINY_TEXT = dict(CLIP_L14_TEXT, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                 projection_dim=32)


def tiny_layout(cross_attention_dim: int = 32, snapfusion: bool = False) -> UNetLayout:
    """A 2-level layout with widths (32, 64) for tests; `snapfusion` drops the top-level attention
    as Table 3 does."""
    top = ("resnet",) if snapfusion else ("resnet", "transformer")
    return UNetLayout(
        name="tiny-snapfusion" if snapfusion else "tiny",
        down=(StageLayout(32, top, heads=2), StageLayout(64, ("resnet", "transformer"), heads=4)),
        mid=StageLayout(64, ("resnet", "transformer", "resnet"), heads=4),
        up=(StageLayout(64, ("resnet", "transformer", "resnet", "transformer"), heads=4),
            StageLayout(32, top * 2, heads=2)),
        cross_attention_dim=cross_attention_dim, sample_size=8, norm_num_groups=8,
    )


TINY_DECODER = DecoderConfig(block_out_channels=(8, 16, 16, 16), layers_per_block=1, norm_num_groups=8)


def build_pipeline(layout: UNetLayout, text_config: dict[str, Any], decoder_config: DecoderConfig,
                   scheduler: SchedulerConfig, defaults: PipelineDefaults, seed: int = 0,
                   attention: AttentionImpl | str = AttentionImpl.SPLIT_EINSUM, init_std: float | None = None) -> Pipeline:
    """A pipeline with seeded random weights. init_std re-draws every weight N(0, init_std) so that
    no layer is zero-initialised (useful to exercise every path in tests)."""
    torch.manual_seed(seed)
    text_encoder = build_text_encoder(text_config)
    unet = SnapFusionUNet(layout, attention).eval()
    decoder = VAEDecoder(decoder_config).eval()
    if init_std is not None:
        for module in (text_encoder, unet, decoder):
            for p in module.parameters():
                p.data.normal_(0.0, init_std)
    return Pipeline(load_tokenizer(tokenizer_dir()), text_encoder, unet, decoder, scheduler, defaults, "random")


def build_tiny_pipeline(layout: UNetLayout | None = None, seed: int = 0, prediction_type: str = "epsilon",
                        attention: AttentionImpl | str = AttentionImpl.SPLIT_EINSUM) -> Pipeline:
    """A seeded pipeline small enough for unit tests (64x64 images, 8x8 latents)."""
    layout = layout or tiny_layout(TINY_TEXT["hidden_size"])
    scheduler = SchedulerConfig(prediction_type=prediction_type)
    defaults = PipelineDefaults(steps=4, guidance_scale=7.5, image_size=layout.sample_size * TINY_DECODER.latent_factor)
    return build_pipeline(layout, TINY_TEXT, TINY_DECODER, scheduler, defaults, seed, attention, init_std=0.05)


def build_full_size_pipeline(layout_name: str = "snapfusion", slim_decoder: bool | None = None, seed: int = 0,
                             attention: AttentionImpl | str = AttentionImpl.SPLIT_EINSUM) -> Pipeline:
    """A random-weight full-size pipeline (CLIP ViT-L/14 text tower, 512x512) for benchmarks, with
    the decoder and steps SnapFusion pairs the layout with (config.LayoutPairing) unless
    `slim_decoder` says otherwise."""
    layout = resolve_layout(layout_name)
    pairing = LayoutPairing.of(layout) if slim_decoder is None else LayoutPairing(slim_decoder)
    return build_pipeline(layout, CLIP_L14_TEXT, pairing.decoder, SchedulerConfig(prediction_type="v_prediction"),
                          PipelineDefaults(steps=pairing.steps), seed, attention)
