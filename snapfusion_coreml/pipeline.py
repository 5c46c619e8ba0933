"""The text-to-image pipeline: tokenizer -> text encoder -> DDIM with CFG -> decoder.

One implementation of the generation steps (`generate_image`) runs over a `DiffusionBackend`:
the PyTorch modules (`TorchBackend`, the reference) or the converted Core ML packages run by the
Linux interpreter (snapfusion_coreml/interpret/backend.py), so both produce the image the Swift
app computes from the same seed. Sampling itself is schedule.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
import torch

from .config import PipelineDefaults, SchedulerConfig
from .image_size import ImageSize, latent_size
from .schedule import guided_prediction, initial_latents, sample, uses_guidance
from .tokenizer import tokenize

StepCallback = Callable[[int, int, torch.Tensor], None]


class DiffusionBackend(Protocol):
    """The three networks of a pipeline, whatever runs them.

    unet_batch: the UNet batch the backend requires (1 or 2), or None when any batch works.
    """

    unet_batch: int | None
    latent_channels: int

    def latent_size(self, image: ImageSize | int | None) -> tuple[int, int]:
        """(latent height, latent width) for `image` (None: the backend's default size), or a
        UserError when the backend cannot take it."""

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids (B, 77) int -> last hidden states (B, 77, D) float32."""

    def unet(self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """sample (B, C, h, w), timestep (B,) float, context (B, D, 1, 77) -> raw prediction (B, C, h, w)."""

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (1, C, h, w), already divided by the latent scale factor -> image (1, 3, 8h, 8w) in [-1, 1]."""


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) uint8, as the Swift app converts it."""
    image = ((image[0].float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0)
    return image.cpu().numpy()


@torch.no_grad()
def generate_image(backend: DiffusionBackend, tokenizer, scheduler: SchedulerConfig, defaults: PipelineDefaults,
                   prompt: str, steps: int | None = None, guidance_scale: float | None = None, seed: int = 0,
                   image_size: ImageSize | int | None = None, on_step: StepCallback | None = None,
                   timesteps: list[int] | None = None, device: torch.device | str = "cpu") -> np.ndarray:
    """A (H, W, 3) uint8 image. Latents start from torch.randn on a CPU generator seeded by `seed`.

    timesteps: an explicit sampler timestep list (pipeline.json's); default from `scheduler`.
    """
    steps = steps or (len(timesteps) if timesteps else defaults.steps)
    w = defaults.guidance_scale if guidance_scale is None else guidance_scale
    height, width = backend.latent_size(image_size)  # None: the default size

    # 1. text: unconditional ("") and conditional embeddings, in the UNet's (B, D, 1, 77) layout
    ids = tokenize(tokenizer, ["", prompt])
    context = backend.encode(ids).transpose(1, 2).unsqueeze(2).to(device)
    # 2. initial noise, reproducible on any device and in Swift
    latents = initial_latents(seed, (1, backend.latent_channels, height, width)).to(device)

    # 3. DDIM with classifier-free guidance: one batch-2 UNet call per step (unconditional, then
    #    conditional), two batch-1 calls where the backend takes batch 1, one call without guidance
    def denoise(z: torch.Tensor, t: int) -> torch.Tensor:
        def call(batch: int, ctx: torch.Tensor) -> torch.Tensor:
            return backend.unet(z.repeat(batch, 1, 1, 1), torch.full((batch,), float(t), device=device), ctx)

        if backend.unet_batch == 1:
            cond = call(1, context[1:])
            return guided_prediction(cond, call(1, context[:1]) if uses_guidance(w) else None, w)
        if not uses_guidance(w) and backend.unet_batch is None:
            return call(1, context[1:])
        uncond, cond = call(2, context).chunk(2)
        return guided_prediction(cond, uncond, w)

    if timesteps is not None and steps != len(timesteps):
        timesteps = None  # another step count: the schedule's own spacing
    latents = sample(denoise, latents, scheduler, steps, on_step, timesteps)
    # 4. decode
    return to_uint8(backend.decode(latents / defaults.latent_scale_factor))


class TorchBackend:
    """The PyTorch modules of a `Pipeline` (on their device); `skip_blocks` act as identity."""

    unet_batch = None

    def __init__(self, pipeline: "Pipeline", skip_blocks: frozenset[str] = frozenset()):
        self.pipeline, self.skip_blocks = pipeline, skip_blocks
        self.latent_channels = pipeline.unet.layout.in_channels

    def latent_size(self, image: ImageSize | int | None) -> tuple[int, int]:
        return self.pipeline.latent_size(image)

    def encode(self, input_ids: torch.Tensor) -> torch.Tensor:
        encoder = self.pipeline.text_encoder
        return encoder(input_ids=input_ids.to(next(encoder.parameters()).device)).last_hidden_state

    def unet(self, sample: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.pipeline.unet(sample, timestep, context, self.skip_blocks)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.pipeline.decoder(z)


@dataclass
class Pipeline:
    tokenizer: object  # transformers CLIPTokenizer
    text_encoder: torch.nn.Module  # transformers CLIPTextModel
    unet: torch.nn.Module  # SnapFusionUNet
    decoder: torch.nn.Module  # VAEDecoder
    scheduler: SchedulerConfig
    defaults: PipelineDefaults = field(default_factory=PipelineDefaults)
    source: str = ""

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
                 skip_blocks: frozenset[str] = frozenset()) -> np.ndarray:
        """A (H, W, 3) uint8 image (see `generate_image`; image_size: an int for a square or an ImageSize).

        skip_blocks: UNet blocks that act as identity (architecture evolution scores them so).
        """
        return generate_image(TorchBackend(self, skip_blocks), self.tokenizer, self.scheduler, self.defaults, prompt,
                              steps, guidance_scale, seed, image_size, on_step,
                              device=next(self.unet.parameters()).device)
