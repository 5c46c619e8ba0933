"""The micro UNet layout: the tiny layout cut down for tests whose property does not depend on the
layout's size (multifunction packages, chunking, byte reproducibility, pass pipelines)."""

from __future__ import annotations

from snapfusion_coreml.config import StageLayout, UNetLayout


def micro_layout(heads: int = 1) -> UNetLayout:
    """2 levels at widths 32/64 (latent divisor 2, as the tiny layout), 4 ResNets and 2 transformers
    with `heads` heads: about a third of the tiny layout's Core ML ops, so a conversion takes about a
    third of the time; every kind of block, skip connection and resampler is still there."""
    return UNetLayout(
        name="micro",
        down=(StageLayout(32, ("resnet",), heads=heads), StageLayout(64, ("resnet", "transformer"), heads=heads)),
        mid=StageLayout(64, ("resnet",), heads=heads),
        up=(StageLayout(64, ("resnet", "transformer"), heads=heads), StageLayout(32, ("resnet",), heads=heads)),
        cross_attention_dim=32, sample_size=8, norm_num_groups=8,
    )
