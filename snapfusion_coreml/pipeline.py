"""The PyTorch reference text-to-image pipeline: tokenizer -> text encoder -> DDIM with CFG ->
decoder. The converted Core ML pipeline and the Swift app compute exactly this."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .config import PipelineDefaults, SchedulerConfig
from .image_size import ImageSize, latent_size
from .modeling.tokenizer import tokenize
from .schedule import guide, initial_latents, sample


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
        ids = tokenize(self.tokenizer, prompts).to(next(self.text_encoder.parameters()).device)
        return self.text_encoder(input_ids=ids).last_hidden_state

    @torch.no_grad()
    def generate(self, prompt: str, steps: int | None = None, guidance_scale: float | None = None, seed: int = 0,
                 image_size: ImageSize | int | None = None, on_step: Callable[[int, int, torch.Tensor], None] | None = None,
                 skip_blocks: frozenset[str] = frozenset()) -> np.ndarray:
        """A (H, W, 3) uint8 image (image_size: pixels, an int for a square or an ImageSize). Latents start from torch.randn on a CPU generator seeded by `seed`.

        skip_blocks: UNet blocks that act as identity (architecture evolution scores them so).
        """
        steps = steps or self.defaults.steps
        w = self.defaults.guidance_scale if guidance_scale is None else guidance_scale
        height, width = self.latent_size(image_size)
        device = next(self.unet.parameters()).device

        # 1. text: unconditional ("") and conditional embeddings, in the UNet's (B, D, 1, 77) layout
        context = self.encode_prompts(["", prompt]).transpose(1, 2).unsqueeze(2)
        # 2. initial noise, reproducible on any device and in Swift
        latents = initial_latents(seed, (1, self.unet.layout.in_channels, height, width)).to(device)

        # 3. DDIM with classifier-free guidance (one batch-2 UNet call per step)
        def denoise(z: torch.Tensor, t: int) -> torch.Tensor:
            if w == 1.0:
                return self.unet(z, torch.full((1,), float(t), device=device), context[1:], skip_blocks)
            uncond, cond = self.unet(z.repeat(2, 1, 1, 1), torch.full((2,), float(t), device=device), context,
                                     skip_blocks).chunk(2)
            return guide(cond, uncond, w)

        latents = sample(denoise, latents, self.scheduler, steps, on_step)
        # 4. decode
        image = self.decoder(latents / self.defaults.latent_scale_factor)
        image = ((image[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0)
        return image.cpu().numpy()
