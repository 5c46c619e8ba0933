"""When classifier-free guidance runs: diffusers' rule, shared (torch-free) by sampling, convert,
inspect and the latency estimate."""

from __future__ import annotations


def uses_guidance(scale: float) -> bool:
    """Whether w runs guidance at all: diffusers' rule (`do_classifier_free_guidance`), w > 1. For
    w <= 1, 0 < w < 1 included, sampling uses the conditional prediction alone and needs no
    unconditional UNet pass. Swift twin: `Pipeline.usesGuidance` (ios_app/.../Pipeline/Pipeline.swift)."""
    return scale > 1.0


def runs_cfg(scale: float, embedding_dim: int | None) -> bool:
    """Whether sampling runs a negative-prompt UNet pass per step: w > 1 and no guidance embedding
    (a UNet with `timestep_cond` takes w as an input and runs once per step)."""
    return uses_guidance(scale) and embedding_dim is None
