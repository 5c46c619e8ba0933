"""The text-to-image pipeline: tokenizer -> text encoder -> the model's sampler with CFG -> decoder;
image to image starts the sampler from an encoded, noised image instead (VAE encoder).

One implementation of the generation steps (`generate_image`) runs over a `DiffusionBackend`:
the PyTorch modules (`TorchBackend`, the reference) or the converted Core ML packages run by the
Linux interpreter (snapfusion_coreml/interpreter/backend.py), so both produce the image the Swift
app computes from the same seed. Sampling itself is samplers/'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from .config import PipelineDefaults, SchedulerConfig
from .errors import UserError
from .guidance import runs_cfg
from .image_size import VAE_FACTOR, ImageSize, latent_size
from .init_image import init_image_tensor
from .samplers.img2img import start_index
from .samplers.plan import plan
from .samplers.record import SamplerRecord
from .samplers.run import StepFn, run_sampler
from .samplers.settings import SamplerSettings
from .schedule import cfg_batch, guidance_embedding, guided_prediction
from .tokenizer import tokenize

StepCallback = StepFn  # (call index, timestep, new latent), after every UNet call


class DiffusionBackend(Protocol):
    """The networks of a pipeline, whatever runs them (the VAE encoder only for image to image).

    unet_batch: the UNet batch the backend requires (1 or 2), or None when any batch works.
    guidance_embedding_dim: D of the UNet's `timestep_cond` (B, D) input, None without one.
    """

    unet_batch: int | None
    latent_channels: int
    guidance_embedding_dim: int | None

    def latent_size(self, image: ImageSize | int | None) -> tuple[int, int]:
        """(latent height, latent width) for `image` (None: the backend's default size), or a
        UserError when the backend cannot take it."""

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids (B, 77) int -> last hidden states (B, 77, D) float32."""

    def unet(self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
             timestep_cond: torch.Tensor | None = None) -> torch.Tensor:
        """sample (B, C, h, w), timestep (B,) float, context (B, D, 1, 77) [, timestep_cond (B, E)]
        -> raw prediction (B, C, h, w)."""

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (1, C, h, w), already divided by the latent scale factor -> image (1, 3, 8h, 8w) in [-1, 1]."""

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """image (1, 3, 8h, 8w) in [-1, 1] -> the VAE posterior's moments (1, 2C, h, w): mean, then
        log-variance; a UserError when the backend has no encoder."""


def image_latent(moments: torch.Tensor, noise: torch.Tensor, scale_factor: float) -> torch.Tensor:
    """diffusers' DiagonalGaussianDistribution.sample of the moments with `noise`, times the
    latent scale factor: (mean + exp(0.5 * clamp(logvar, -30, 20)) * noise) * scale_factor."""
    mean, logvar = moments.float().chunk(2, dim=1)
    std = torch.exp(0.5 * logvar.clamp(-30.0, 20.0))
    return (mean + std * noise.to(mean.device)) * scale_factor


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8, as the Swift app converts it."""
    image = ((image[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0)
    return image.cpu().numpy()


@dataclass(frozen=True)
class SamplingPlan:
    """How one generation samples: the noise schedule, the sampler's settings, and its record for
    the default step count when one is already planned (pipeline.json's)."""

    scheduler: SchedulerConfig
    sampler: SamplerSettings
    record: SamplerRecord | None = None

    def record_for(self, steps: int | None, default_steps: int) -> SamplerRecord:
        """The record of `steps` (None: the default), replanned only when the count differs."""
        if self.record is not None and steps in (None, self.record.default_steps):
            return self.record
        return plan(self.sampler, self.scheduler, steps or default_steps)


@torch.no_grad()
def generate_image(backend: DiffusionBackend, tokenizer, sampling: SamplingPlan, defaults: PipelineDefaults,
                   prompt: str, steps: int | None = None, guidance_scale: float | None = None, seed: int = 0,
                   image_size: ImageSize | int | None = None, on_step: StepCallback | None = None,
                   negative_prompt: str = "", device: torch.device | str = "cpu", init_image=None,
                   strength: float = 0.8) -> np.ndarray:
    """A (H, W, 3) uint8 image, the one diffusers' StableDiffusionPipeline (or, for a UNet with a
    guidance embedding, LatentConsistencyModelPipeline) draws with the same scheduler, steps,
    guidance and `generator=torch.Generator("cpu").manual_seed(seed)`.

    With `init_image` (a PIL image, fitted to the image size by init_image.fit_init_image): the
    image StableDiffusionImg2ImgPipeline draws from it at `strength` with the same arguments.
    """
    record = sampling.record_for(steps, defaults.steps)
    begin = 0 if init_image is None else start_index(record.default_steps, strength)  # before any network runs
    w = defaults.guidance_scale if guidance_scale is None else guidance_scale
    embedding_dim = backend.guidance_embedding_dim
    guided = runs_cfg(w, embedding_dim)  # diffusers' do_classifier_free_guidance
    height, width = backend.latent_size(image_size)  # None: the default size

    # 1. text: negative (unconditional) and conditional embeddings, in the UNet's (B, D, 1, 77) layout
    ids = tokenize(tokenizer, [negative_prompt, prompt])
    context = backend.encode(ids).transpose(1, 2).unsqueeze(2).to(device)
    timestep_cond = None if embedding_dim is None else guidance_embedding(w, embedding_dim).to(device)

    # 2. the UNet with classifier-free guidance: one batch-2 call per step (negative, then
    #    conditional), two batch-1 calls where the backend takes batch 1, one call without guidance
    def unet(z: torch.Tensor, t: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        cond = None if timestep_cond is None else timestep_cond.expand(z.shape[0], -1)
        return backend.unet(z, t, ctx, cond)

    def denoise(z: torch.Tensor, t: float) -> torch.Tensor:
        tt = torch.full((1,), float(t), device=device)
        if backend.unet_batch == 1:
            cond = unet(z, tt, context[1:])
            return guided_prediction(cond, unet(z, tt, context[:1]), w) if guided else cond
        if not guided and backend.unet_batch is None:
            return unet(z, tt, context[1:])
        guided_out, cond = cfg_batch(unet, z, tt, context[:1], context[1:], w)
        return guided_out if guided else cond

    # 3. sample from seeded noise, every draw from one generator (image to image: the encoder's
    #    posterior sample first, then the noise added to the image latent), 4. decode
    generator = torch.Generator("cpu").manual_seed(seed)
    shape = (1, backend.latent_channels, height, width)
    start = None
    if init_image is not None:
        pixels = init_image_tensor(init_image, ImageSize(height * VAE_FACTOR, width * VAE_FACTOR))
        moments = backend.encode_image(pixels.to(device))
        if tuple(moments.shape) != (1, 2 * backend.latent_channels, height, width):
            raise UserError(f"expected VAE encoder moments of shape {(1, 2 * backend.latent_channels, height, width)}, "
                            f"got {tuple(moments.shape)}")
        start = image_latent(moments, torch.randn(shape, generator=generator, dtype=torch.float32),
                             defaults.latent_scale_factor)
    latents = run_sampler(record, sampling.scheduler, denoise, shape, generator, on_step, device, start, begin)
    return to_uint8(backend.decode(latents / defaults.latent_scale_factor))


class TorchBackend:
    """The PyTorch modules of a `Pipeline` (on their device); `skip_blocks` act as identity."""

    unet_batch = None

    def __init__(self, pipeline: "Pipeline", skip_blocks: frozenset[str] = frozenset()):
        self.pipeline, self.skip_blocks = pipeline, skip_blocks
        self.latent_channels = pipeline.unet.layout.in_channels
        self.guidance_embedding_dim = pipeline.unet.layout.time_cond_proj_dim

    def latent_size(self, image: ImageSize | int | None) -> tuple[int, int]:
        return self.pipeline.latent_size(image)

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        encoder = self.pipeline.text_encoder
        return encoder(input_ids=input_ids.to(next(encoder.parameters()).device)).last_hidden_state

    def unet(self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor,
             timestep_cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.pipeline.unet(sample, timestep, context, self.skip_blocks, timestep_cond)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.pipeline.decoder(z)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        encoder = self.pipeline.encoder
        if encoder is None:
            raise UserError(f"expected a model with a VAE encoder for --init-image, got {self.pipeline.source or 'one'} "
                            "without one (a diffusers vae/ with encoder weights, or our vae_encoder/)")
        return encoder(image.to(next(encoder.parameters()).device))


@dataclass
class Pipeline:
    tokenizer: object  # transformers CLIPTokenizer
    text_encoder: torch.nn.Module  # transformers CLIPTextModel
    unet: torch.nn.Module  # SnapFusionUNet
    decoder: torch.nn.Module  # VAEDecoder
    scheduler: SchedulerConfig
    defaults: PipelineDefaults = field(default_factory=PipelineDefaults)
    source: str = ""
    scheduler_config: dict | None = None  # the raw scheduler config (diffusers': `_class_name` and fields)
    encoder: torch.nn.Module | None = None  # VAEEncoder (image to image), None when the model has none

    def sampler_settings(self, override: str | None = None, eta: float | None = None) -> SamplerSettings:
        """The model's sampler (samplers/settings.py), or `override` over the model's config."""
        from .samplers.settings import model_settings

        return model_settings(self.scheduler, self.scheduler_config, f"{self.source or 'the model'}/scheduler", override, eta)

    @property
    def latent_divisor(self) -> int:
        return self.unet.layout.latent_divisor

    def check_image_size(self, image_size: int) -> int:
        """The latent side for a square `image_size`, or a clear error if the UNet cannot take it."""
        return self.latent_size(ImageSize.square(image_size))[0]

    def latent_size(self, image: ImageSize | int | None = None) -> tuple[int, int]:
        """(latent height, latent width) for `image` (default: the model's square size)."""
        if image is None:
            image = self.defaults.image_size
        image = ImageSize.square(image) if isinstance(image, int) else image
        return latent_size(image, self.latent_divisor, self.unet.layout.num_levels)

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """(B, 77, D) last hidden states of the text encoder."""
        return TorchBackend(self).encode(tokenize(self.tokenizer, prompts))

    @torch.no_grad()
    def generate(self, prompt: str, steps: int | None = None, guidance_scale: float | None = None, seed: int = 0,
                 image_size: ImageSize | int | None = None, on_step: StepCallback | None = None,
                 skip_blocks: frozenset[str] = frozenset(), negative_prompt: str = "",
                 sampler: SamplerSettings | None = None, init_image=None, strength: float = 0.8) -> np.ndarray:
        """A (H, W, 3) uint8 image (see `generate_image`; image_size: an int for a square or an ImageSize).

        skip_blocks: UNet blocks that act as identity (architecture evolution scores them so);
        sampler: another sampler than the model's own; init_image (a PIL image) and strength: image to image.
        """
        sampling = SamplingPlan(self.scheduler, sampler or self.sampler_settings())
        return generate_image(TorchBackend(self, skip_blocks), self.tokenizer, sampling, self.defaults, prompt,
                              steps, guidance_scale, seed, image_size, on_step, negative_prompt,
                              device=next(self.unet.parameters()).device, init_image=init_image, strength=strength)
