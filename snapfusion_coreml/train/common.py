"""Pieces every training command shares: loading the teacher, text conditioning, where the clean
latents x0 come from, and the noising of a batch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import SchedulerConfig
from ..errors import UserError
from ..optional import require
from ..pipeline import Pipeline
from ..schedule import alpha_sigma, cfg_batch, sample
from . import losses
from .data import STREAM_NOISE, STREAM_TEACHER, STREAM_TIMESTEP, Batch, DataStream, draw_for_batch


def load_model(model: str | Path, what: str, allow_pickle: bool = False) -> Pipeline:
    """A pipeline folder for training (ORIGINAL attention: one batched matmul, best on GPUs)."""
    from ..modeling.attention import AttentionImpl
    from ..modeling.loading import load_pipeline
    from ..modeling.source import looks_like_hub_id

    if not Path(model).exists() and not looks_like_hub_id(model):
        raise UserError(f"{what} model folder not found: {model}")
    return load_pipeline(model, attention=AttentionImpl.ORIGINAL, allow_pickle=allow_pickle)


def freeze(module: nn.Module) -> nn.Module:
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def as_bc1s(hidden: torch.Tensor) -> torch.Tensor:
    """(B, 77, D) text encoder states -> the UNet's (B, D, 1, 77) layout."""
    return hidden.transpose(1, 2).unsqueeze(2)


class TextConditioner:
    """Frozen text encoder: captions -> (B, D, 1, 77), with the "" embedding cached."""

    def __init__(self, pipeline: Pipeline, device: torch.device):
        self.pipeline = pipeline
        freeze(pipeline.text_encoder).to(device)
        self._null: torch.Tensor | None = None

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> torch.Tensor:
        return as_bc1s(self.pipeline.encode_prompts(captions))

    def null(self, batch: int) -> torch.Tensor:
        if self._null is None:
            self._null = self([""])
        return self._null.expand(batch, -1, -1, -1)


def load_vae_encoder(path: Path):
    """A diffusers AutoencoderKL folder (config.json + weights) whose encoder turns images into x0."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UserError(f"expected a diffusers VAE folder with config.json for image data, got none (in {path})")
    require("diffusers", "train", "image data (a diffusers VAE encoder)")
    from diffusers import AutoencoderKL

    try:
        return freeze(AutoencoderKL.from_pretrained(str(path)))
    except (OSError, ValueError) as exc:
        raise UserError(f"expected a loadable diffusers AutoencoderKL, got: {exc} (in {path})") from None


@dataclass
class LatentSource:
    """Where x0 (B, 4, h, w) comes from: precomputed latents, images through a VAE encoder, or
    (data-free, prompt lists) samples of the teacher with classifier-free guidance."""

    teacher: Pipeline
    text: TextConditioner
    latent_side: int
    seed: int
    rank: int
    vae_encoder: nn.Module | None = None
    sample_steps: int = 32
    sample_guidance: float = 7.5
    world_size: int = 1

    @torch.no_grad()
    def __call__(self, batch: Batch, micro_step: int, device: torch.device) -> torch.Tensor:
        if batch.latents is not None:
            return batch.latents.to(device)
        if batch.images is not None:
            if self.vae_encoder is None:
                raise UserError("expected --vae (a diffusers VAE folder with an encoder) to train on images, got none; "
                                "use precomputed .npy latents or a prompt list instead")
            dist = self.vae_encoder.to(device).encode(batch.images.to(device)).latent_dist
            noise = draw_for_batch(lambda g, n: torch.randn((n, *dist.mean.shape[1:]), generator=g), dist.mean.shape[0],
                                   self.seed, micro_step, self.rank, self.world_size, STREAM_NOISE + 100).to(device)
            return (dist.mean + dist.std * noise) * self.teacher.defaults.latent_scale_factor
        return self.teacher_samples(batch.captions, micro_step, device)

    def teacher_samples(self, captions: list[str], micro_step: int, device: torch.device) -> torch.Tensor:
        """x0 by DDIM-sampling the teacher from seeded noise (the data-free path)."""
        unet = self.teacher.unet
        shape = (unet.layout.in_channels, self.latent_side, self.latent_side)
        noise = draw_for_batch(lambda g, n: torch.randn((n, *shape), generator=g), len(captions), self.seed, micro_step,
                               self.rank, self.world_size, STREAM_TEACHER).to(device)
        return sample_with_cfg(unet, self.text(captions), self.text.null(len(captions)), noise,
                               self.teacher.scheduler, self.sample_steps, self.sample_guidance)


@torch.no_grad()
def sample_with_cfg(unet: nn.Module, cond: torch.Tensor, uncond: torch.Tensor, noise: torch.Tensor,
                    scheduler: SchedulerConfig, steps: int, guidance: float) -> torch.Tensor:
    """schedule.sample with CFG as one batch-2B UNet call per step (schedule.cfg_batch)."""

    def denoise(z: torch.Tensor, t: int) -> torch.Tensor:
        tt = torch.full((z.shape[0],), float(t), device=z.device)
        return cfg_batch(unet, z, tt, uncond, cond, torch.full((z.shape[0],), guidance, device=z.device))[0]

    return sample(denoise, noise, scheduler, steps)


@dataclass(frozen=True)
class Noised:
    x0: torch.Tensor
    eps: torch.Tensor
    z_t: torch.Tensor
    t: torch.Tensor  # (B,) integer timesteps
    alpha: torch.Tensor  # (B,) float32
    sigma: torch.Tensor


def noise_batch(x0: torch.Tensor, t: torch.Tensor, cumprod: np.ndarray, seed: int, micro_step: int, rank: int,
                world_size: int = 1) -> Noised:
    eps = draw_for_batch(lambda g, n: torch.randn((n, *x0.shape[1:]), generator=g), x0.shape[0], seed, micro_step, rank,
                         world_size, STREAM_NOISE).to(x0.device)
    alpha, sigma = (v.float() for v in alpha_sigma(cumprod, t))
    return Noised(x0, eps, losses.diffuse(x0, eps, alpha, sigma), t, alpha, sigma)


def uniform_timesteps(batch: int, config: SchedulerConfig, seed: int, micro_step: int, rank: int,
                      device: torch.device, world_size: int = 1) -> torch.Tensor:
    """t ~ U{0, ..., N-1} per sample: the ordinary diffusion training distribution."""
    return draw_for_batch(lambda g, n: torch.randint(0, config.num_train_timesteps, (n,), generator=g), batch, seed,
                          micro_step, rank, world_size, STREAM_TIMESTEP).to(device)


def make_stream(data: Path, run, caption_dropout: float, image_size: int, accelerator) -> DataStream:
    from .data import load_examples

    return DataStream(load_examples(data), run.batch_size, run.seed, caption_dropout, image_size,
                      accelerator.process_index, accelerator.num_processes)
