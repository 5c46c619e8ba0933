"""Quality scorers for architecture evolution: score(pipeline, skip_blocks) -> float, higher is better.

Any object or function with that signature works (`QualityScorer`). Provided:
  - CLIPScorer: SnapFusion's measure, the raw CLIP cosine between generated images and their
    prompts with locally available weights (the paper: ViT-g/14, 50 steps, CFG 7.5; a 2K MS-COCO
    subset): an open_clip checkpoint (`pip install .[clip]`) or a transformers CLIP folder;
  - FidelityScorer: minus the mean squared difference between the x-predictions with and without
    the skipped blocks on fixed noisy latents (needs no extra weights; a block-sensitivity proxy);
  - BlockValueScorer: a fixed value per block, deterministic (tests, or values measured elsewhere).
`load_scorer("module:factory")` imports any other scorer (factory called with no arguments).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import torch

from ..errors import UserError
from ..pipeline import Pipeline
from ..schedule import alpha_sigma, alphas_cumprod, initial_latents, to_x_eps
from .common import as_bc1s


class QualityScorer(Protocol):
    def __call__(self, pipeline: Pipeline, skip_blocks: frozenset[str]) -> float: ...


class BlockValueScorer:
    """score = base - sum of the values of the skipped blocks."""

    def __init__(self, values: dict[str, float], base: float = 1.0):
        self.values, self.base = dict(values), base

    def __call__(self, pipeline: Pipeline, skip_blocks: frozenset[str]) -> float:
        return self.base - sum(self.values.get(name, 0.0) for name in skip_blocks)


class FidelityScorer:
    """-mean ||x_hat(skips) - x_hat(full)||^2 over prompts x timesteps on fixed seeded latents.

    The reference predictions are those of the full model passed in the first call after
    `reset()`; evolve resets the scorer whenever the model changes.
    """

    def __init__(self, prompts: list[str], timesteps: tuple[int, ...] = (999, 749, 499, 249), seed: int = 0):
        if not prompts:
            raise UserError("expected at least one prompt for the fidelity scorer, got none")
        self.prompts, self.timesteps, self.seed = prompts, timesteps, seed
        self._reference: torch.Tensor | None = None

    def reset(self) -> None:
        self._reference = None

    @torch.no_grad()
    def _x_hat(self, pipeline: Pipeline, skip_blocks: frozenset[str]) -> torch.Tensor:
        unet = pipeline.unet
        side = pipeline.check_image_size(pipeline.defaults.image_size)
        device = next(unet.parameters()).device
        context = as_bc1s(pipeline.encode_prompts(self.prompts)).to(device)
        n, cumprod = len(self.prompts), alphas_cumprod(pipeline.scheduler)
        out = []
        for i, t in enumerate(self.timesteps):
            z = initial_latents(self.seed + i, (n, unet.layout.in_channels, side, side)).to(device)
            tt = torch.full((n,), t, device=device)
            a, s = (v.float().view(-1, 1, 1, 1) for v in alpha_sigma(cumprod, tt))
            pred = unet(z, tt.float(), context, skip_blocks=skip_blocks)
            out.append(to_x_eps(pred, z, a, s, pipeline.scheduler.prediction_type)[0])
        return torch.stack(out)

    def __call__(self, pipeline: Pipeline, skip_blocks: frozenset[str]) -> float:
        if self._reference is None:
            self._reference = self._x_hat(pipeline, frozenset())
        return -float(((self._x_hat(pipeline, skip_blocks) - self._reference) ** 2).mean())


class CLIPScorer:
    """Mean raw CLIP cosine (image, prompt) of images generated with the skipped blocks.

    `weights`: an open_clip checkpoint file (with `model_name`) or a local transformers CLIP
    folder; scored by eval/scores.py's CLIPScore, the one CLIP score of the project.
    """

    def __init__(self, prompts: list[str], weights: Path | None, model_name: str = "ViT-g-14", steps: int = 50,
                 guidance_scale: float = 7.5, seed: int = 0):
        from ..eval.scores import CLIPScore

        if weights is None:
            raise UserError(f"expected local CLIP weights for {model_name} (--clip-weights FILE or folder), got none")
        self.clip = CLIPScore(weights, model_name)
        self.prompts, self.steps, self.guidance_scale, self.seed = prompts, steps, guidance_scale, seed

    @torch.no_grad()
    def __call__(self, pipeline: Pipeline, skip_blocks: frozenset[str]) -> float:
        import numpy as np

        images = np.stack([pipeline.generate(p, self.steps, self.guidance_scale, self.seed + i, skip_blocks=skip_blocks)
                           for i, p in enumerate(self.prompts)])
        return float(self.clip(images, self.prompts).mean())


def load_scorer(spec: str, prompts: list[str], clip_weights: Path | None = None, clip_model: str = "ViT-g-14",
                steps: int = 50, seed: int = 0) -> QualityScorer:
    """"clip", "fidelity", or "package.module:factory" (a zero-argument callable returning a scorer)."""
    if spec == "clip":
        return CLIPScorer(prompts, clip_weights, clip_model, steps, seed=seed)
    if spec == "fidelity":
        return FidelityScorer(prompts, seed=seed)
    if ":" not in spec:
        raise UserError(f"expected --scorer clip, fidelity or module:factory, got {spec!r}")
    module_name, attr = spec.split(":", 1)
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"expected an importable scorer factory {spec!r}, got: {exc}") from None
    scorer = factory()
    if not callable(scorer):
        raise UserError(f"expected {spec} to return a callable scorer(pipeline, skip_blocks) -> float, got {type(scorer).__name__}")
    return scorer
