"""Train a small KL autoencoder (diffusers AutoencoderKL) and encode a data set into latents.

The autoencoder is the latent space every later stage works in (Rombach et al.'s LDM, which SD
and SnapFusion build on): images (B, 3, S, S) -> latents (B, 4, S/8, S/8) with 4 blocks. Loss:
MSE of the reconstruction plus kl_weight * KL(q(z|x) || N(0, I)) (no perceptual or adversarial
term: the shapes data set is flat colors and edges). The reconstruction decodes the posterior
mean by default: decoding a sample (LDM's choice) starts from unit-variance noise that the tiny
KL weight shrinks only slowly, and a small autoencoder then predicts the mean color for hundreds
of steps (measured: MSE ~0.5 for 220 steps at batch 8). After training
the latent scaling factor is set to 1 / std of the latents of a held-out batch, as SD's 0.18215
was chosen, so the diffusion model sees unit-variance latents.

The saved folder is a plain diffusers AutoencoderKL (config.json + safetensors): `--vae` of every
training command, and `load_pipeline`/`VAEDecoder.from_diffusers` read its decoder.

With `decoder` (a model folder), the autoencoder takes that model's full-width decoder, frozen, and
its latent scale factor, and trains only the encoder (encoder + quant_conv) to invert it: how a
model whose encoder was not kept gets one for image to image (its diffusion model keeps working in
the latent space its decoder reads).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..io import atomic_directory
from ..optional import require
from .common import load_vae_encoder
from .data import STREAM_NOISE, DataStream, draw_for_batch, example_image, load_examples
from .loop import EVAL_MICRO_STEP, TrainingConfig, TrainResult, make_accelerator, on_main_process, run_training


@dataclass(frozen=True)
class AutoencoderConfig:
    data: Path  # image-text folder or shapes[:SEED] (images; captions unused)
    training: TrainingConfig
    image_size: int = 128
    block_out_channels: tuple[int, ...] = (8, 16, 32, 32)  # 4 blocks: latents at image_size / 8
    layers_per_block: int = 1
    norm_num_groups: int = 4  # 4 keeps the 0.5-width slim decoder's channels divisible
    latent_channels: int = 4
    kl_weight: float = 1e-6  # of the summed per-sample KL, as LDM's KL-f8 autoencoder
    sample_posterior: bool = False  # decode a posterior sample (LDM) instead of its mean
    decoder: Path | None = None  # a model folder whose decoder is kept frozen (only the encoder trains)
    init_encoder: Path | None = None  # an AutoencoderKL folder whose encoder + quant_conv start the training

    def build(self, seed: int) -> nn.Module:
        AutoencoderKL = require("diffusers", "train", "training an autoencoder").AutoencoderKL

        n = len(self.block_out_channels)
        torch.manual_seed(seed)
        return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                             up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=self.block_out_channels,
                             layers_per_block=self.layers_per_block, latent_channels=self.latent_channels,
                             norm_num_groups=self.norm_num_groups, sample_size=self.image_size)


def _frozen_decoder(config: AutoencoderConfig) -> tuple[AutoencoderConfig, dict[str, torch.Tensor], float]:
    """The architecture, the decoder weights (post_quant_conv.*, decoder.*) and the latent scale
    factor of config.decoder's model, or a UserError for a decoder no AutoencoderKL can hold."""
    from ..modeling.loading import ModelFolder

    folder = ModelFolder(config.decoder)
    decoder = folder.load("decoder")
    c = decoder.config
    if c.width_multiplier != 1.0:
        raise UserError(f"expected a full-width decoder (width_multiplier 1.0) to train an encoder for, got "
                        f"{c.width_multiplier} (in {config.decoder})")
    arch = dataclasses.replace(config, block_out_channels=tuple(c.block_out_channels), layers_per_block=c.layers_per_block,
                               norm_num_groups=c.norm_num_groups, latent_channels=c.latent_channels)
    state = {k: v.float() for k, v in decoder.state_dict().items()}
    return arch, state, float(folder.defaults.latent_scale_factor)


def train_autoencoder(config: AutoencoderConfig) -> tuple[nn.Module, TrainResult]:
    """Train, set the latent scaling factor, save a diffusers AutoencoderKL folder to config.training.out."""
    # 1. model and data (with a frozen decoder: that model's architecture and weights)
    run = config.training
    run.validate()
    scale = None
    if config.decoder is not None:
        config, decoder_state, scale = _frozen_decoder(config)
    if config.image_size % 2 ** (len(config.block_out_channels) - 1):
        raise UserError(f"expected an image size divisible by {2 ** (len(config.block_out_channels) - 1)}, got {config.image_size}")
    accelerator = make_accelerator(run)
    device = accelerator.device
    vae = config.build(run.seed).train()
    if scale is not None:
        missing = set(decoder_state) - set(vae.state_dict())
        if missing:
            raise UserError(f"expected AutoencoderKL decoder weights, got {sorted(missing)[0]} (in {config.decoder})")
        vae.load_state_dict(decoder_state, strict=False)
        for name, p in vae.named_parameters():
            p.requires_grad_(not name.startswith(("decoder.", "post_quant_conv.")))
    if config.init_encoder is not None:
        start = load_vae_encoder(config.init_encoder).state_dict()
        encoder_state = {k: v for k, v in start.items() if k.startswith(("encoder.", "quant_conv."))}
        mine = vae.state_dict()
        wrong = [k for k in mine if k.startswith(("encoder.", "quant_conv.")) and (k not in encoder_state or encoder_state[k].shape != mine[k].shape)]
        if wrong:
            raise UserError(f"expected an encoder of the same architecture, got none or another shape for {wrong[0]} (in {config.init_encoder})")
        vae.load_state_dict(encoder_state, strict=False)
    stream = DataStream(load_examples(config.data), run.batch_size, run.seed, 0.0, config.image_size,
                        accelerator.process_index, accelerator.num_processes)
    if not stream.has_pixels:
        raise UserError(f"expected images (an image-text folder or shapes[:SEED]) to train an autoencoder, got "
                        f"{'latents' if stream.has_latents else 'a prompt list'} (in {config.data})")
    rank, world = accelerator.process_index, accelerator.num_processes

    # 2. the loss of one micro-batch: reconstruction from a posterior sample + KL
    def step_fn(model, micro_step):
        images = stream.batch(micro_step).images.to(device)
        posterior = model.encode(images).latent_dist
        shape = posterior.mean.shape
        noise = draw_for_batch(lambda g, n: torch.randn((n, *shape[1:]), generator=g), shape[0], run.seed, micro_step,
                               rank, world, STREAM_NOISE).to(device)
        z = posterior.mean + posterior.std * noise if config.sample_posterior else posterior.mean
        reconstruction = model.decode(z).sample
        mse = torch.nn.functional.mse_loss(reconstruction.float(), images)
        kl = posterior.kl().mean()
        return mse + config.kl_weight * kl, {"mse": float(mse.detach()), "kl": float(kl.detach())}

    # 3. train
    fingerprint = {"kind": "train-autoencoder", "data": str(config.data), "image_size": config.image_size,
                   "block_out_channels": list(config.block_out_channels), "layers_per_block": config.layers_per_block,
                   "norm_num_groups": config.norm_num_groups, "kl_weight": config.kl_weight, "sample_posterior": config.sample_posterior,
                   "decoder": str(config.decoder) if config.decoder else None,
                   "init_encoder": str(config.init_encoder) if config.init_encoder else None}
    result = run_training(accelerator, run, vae, step_fn, "train autoencoder", fingerprint)

    # 4. scaling factor from a held-out batch (a frozen decoder keeps its model's), then save
    model = result.model.cpu().eval()
    if scale is None:
        with torch.no_grad():
            held_out = DataStream(load_examples(config.data), 64, run.seed + 1, 0.0, config.image_size).batch(EVAL_MICRO_STEP)
            scale = 1.0 / float(model.encode(held_out.images).latent_dist.mean.std())
    model.register_to_config(scaling_factor=scale)
    def write() -> None:
        with atomic_directory(Path(run.out), run.overwrite) as tmp:
            model.save_pretrained(str(tmp), safe_serialization=True)

    on_main_process(write)
    return model, result


@dataclass(frozen=True)
class EncodeConfig:
    vae: Path  # diffusers AutoencoderKL folder
    data: Path  # image-text folder or shapes[:SEED]
    out: Path  # folder of NNNNNN.npy latents (4, h, w) x scaling factor + NNNNNN.txt captions
    count: int = 4096  # examples (shapes: the first `count` scenes; folders: at most their size)
    image_size: int = 128
    batch_size: int = 32
    overwrite: bool = False


@torch.no_grad()
def encode_latents(config: EncodeConfig) -> int:
    """Write the latent folder (posterior means x scaling factor) every training command reads. Returns the count."""
    vae = load_vae_encoder(config.vae)
    scale = float(vae.config.scaling_factor)
    examples = load_examples(config.data)
    count = config.count if getattr(examples, "endless", False) else min(config.count, len(examples))
    if count < 1:
        raise UserError(f"expected --count >= 1, got {config.count}")
    chosen = examples.head(count) if hasattr(examples, "head") else list(examples)[:count]
    with atomic_directory(Path(config.out), config.overwrite) as tmp:
        for start in range(0, count, config.batch_size):
            part = chosen[start:start + config.batch_size]
            images = torch.stack([example_image(e, config.image_size) for e in part])
            latents = (vae.encode(images).latent_dist.mean * scale).numpy().astype(np.float32)
            for i, (example, latent) in enumerate(zip(part, latents)):
                np.save(tmp / f"{start + i:06d}.npy", latent)
                (tmp / f"{start + i:06d}.txt").write_text(example.caption + "\n", encoding="utf-8")
    return count
