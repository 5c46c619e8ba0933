"""Train a text-to-image base model from scratch: a CLIP text encoder and a UNet, jointly.

This is the teacher every later stage starts from (SnapFusion Sec. 4 starts from SD-v1.5; with
no downloadable weights, `train base` makes a small SD-v1.5-layout model of our own). The text
encoder (transformers CLIPTextModel with the real CLIP tokenizer) and the UNet learn together
with the ordinary denoising loss

    L = ||eps_hat(z_t, t, E(c)) - eps||^2  (or v for a v-prediction base),  t ~ U{0, ..., 999},

where E is the text encoder and c the caption, replaced by "" with probability caption_dropout so
that E("") is a trained unconditional embedding for classifier-free guidance. x0 are latents of a
diffusers AutoencoderKL (--vae): precomputed .npy latents, or images encoded on the fly. The
saved model folder holds the autoencoder's decoder (`generate`, `convert` and every training
command accept it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import PipelineDefaults, SchedulerConfig, resolve_layout
from ..errors import UserError
from ..json_fields import read_json
from ..pipeline import Pipeline
from ..schedule import alphas_cumprod
from . import losses
from .common import LatentSource, as_bc1s, freeze, load_vae_encoder, make_stream, noise_batch, uniform_timesteps
from .loop import TrainingConfig, TrainResult, make_accelerator, on_main_process, run_training


@dataclass(frozen=True)
class BaseConfig:
    data: Path  # .npy latent folder, image-text folder or shapes[:SEED] (images need the VAE's encoder)
    vae: Path  # diffusers AutoencoderKL folder: its decoder is saved with the model
    training: TrainingConfig
    layout: str = "sd-v1.5-tiny"  # UNet layout preset or JSON; cross_attention_dim = text width
    text_width: int = 64  # CLIP text tower: hidden size (intermediate 4x), layers, heads
    text_layers: int = 2
    text_heads: int = 4
    image_size: int = 128
    prediction_type: str = "epsilon"
    caption_dropout: float = 0.1
    steps: int = 50  # sampling defaults recorded with the model
    guidance_scale: float = 7.5

    def text_config(self) -> dict:
        from ..modeling.factory import CLIP_L14_TEXT

        return dict(CLIP_L14_TEXT, hidden_size=self.text_width, intermediate_size=4 * self.text_width,
                    num_hidden_layers=self.text_layers, num_attention_heads=self.text_heads, projection_dim=self.text_width)


class TextToImage(nn.Module):
    """The jointly trained pair: token ids -> text encoder -> UNet's prediction."""

    def __init__(self, text_encoder: nn.Module, unet: nn.Module):
        super().__init__()
        self.text_encoder, self.unet = text_encoder, unet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """sample (B, 4, h, w), timestep (B,), input_ids (B, 77) -> prediction (B, 4, h, w)."""
        hidden = self.text_encoder(input_ids=input_ids).last_hidden_state  # (B, 77, D)
        return self.unet(sample, timestep, as_bc1s(hidden))


def new_pipeline(config: BaseConfig) -> Pipeline:
    """A freshly initialised pipeline: random text encoder and UNet, the VAE's trained decoder (and
    its encoder, kept for image to image)."""
    from ..modeling.attention import AttentionImpl
    from ..modeling.checkpoint import find_weights, read_state_dict
    from ..modeling.factory import build_pipeline
    from ..modeling.vae_decoder import VAEDecoder
    from ..modeling.vae_encoder import VAEEncoder, has_encoder_weights

    layout = resolve_layout(config.layout)
    if layout.cross_attention_dim != config.text_width:
        raise UserError(f"expected a layout with cross_attention_dim {config.text_width} (the text width), got "
                        f"{layout.cross_attention_dim} (in layout {config.layout})")
    if config.text_width % config.text_heads:
        raise UserError(f"expected text heads that divide the text width {config.text_width}, got {config.text_heads}")
    vae_dir = Path(config.vae)
    vae_config = read_json(vae_dir / "config.json", "the VAE config")
    weights = find_weights(vae_dir)
    state = read_state_dict(weights)
    decoder = VAEDecoder.from_diffusers(state, vae_config, str(weights))
    scheduler = SchedulerConfig(prediction_type=config.prediction_type, timestep_spacing="trailing")
    defaults = PipelineDefaults(steps=config.steps, guidance_scale=config.guidance_scale,
                                latent_scale_factor=float(vae_config.get("scaling_factor", 0.18215)),
                                image_size=config.image_size)
    pipeline = build_pipeline(layout, config.text_config(), decoder.config, scheduler, defaults,
                              seed=config.training.seed, attention=AttentionImpl.ORIGINAL)
    pipeline.decoder = decoder.eval()
    if has_encoder_weights(state):
        pipeline.encoder = VAEEncoder.from_diffusers(state, vae_config, str(weights)).eval()
    pipeline.check_image_size(config.image_size)
    return pipeline


def train_base(config: BaseConfig) -> tuple[Pipeline, TrainResult]:
    """Train text encoder + UNet from scratch; save the model folder to config.training.out."""
    from ..modeling.loading import save_pipeline
    from ..tokenizer import tokenize

    # 1. models
    run = config.training
    run.validate()
    if config.prediction_type not in ("epsilon", "v_prediction"):
        raise UserError(f"expected --prediction-type epsilon or v_prediction, got {config.prediction_type!r}")
    pipeline = new_pipeline(config)
    accelerator = make_accelerator(run)
    device = accelerator.device
    model = TextToImage(pipeline.text_encoder, pipeline.unet).train().requires_grad_(True)
    freeze(pipeline.decoder)

    # 2. data: latents, or images through the VAE's encoder
    stream = make_stream(config.data, run, config.caption_dropout, config.image_size, accelerator)
    if not (stream.has_latents or stream.has_pixels):
        raise UserError(f"expected latents or images to train a base model, got a prompt list (in {config.data})")
    vae = load_vae_encoder(config.vae).to(device) if stream.has_pixels else None
    rank, world = accelerator.process_index, accelerator.num_processes
    latent_side = config.image_size // pipeline.decoder.config.latent_factor
    source = LatentSource(pipeline, None, latent_side, run.seed, rank, vae, world_size=world)
    cumprod = alphas_cumprod(pipeline.scheduler)

    # 3. the loss of one micro-batch
    def step_fn(net, micro_step):
        batch = stream.batch(micro_step)
        x0 = source(batch, micro_step, device)
        if x0.shape[1:] != (pipeline.unet.layout.in_channels, latent_side, latent_side):
            raise UserError(f"expected latents of shape ({pipeline.unet.layout.in_channels}, {latent_side}, "
                            f"{latent_side}) for --image-size {config.image_size}, got {tuple(x0.shape[1:])} "
                            f"(in {config.data})")
        t = uniform_timesteps(x0.shape[0], pipeline.scheduler, run.seed, micro_step, rank, device, world)
        noised = noise_batch(x0, t, cumprod, run.seed, micro_step, rank, world)
        ids = tokenize(pipeline.tokenizer, batch.captions).to(device)
        prediction = net(noised.z_t, t.float(), ids)
        return losses.original_loss(prediction.float(), x0, noised.eps, noised.alpha, noised.sigma,
                                    config.prediction_type), {}

    # 4. train and save
    fingerprint = {"kind": "train-base", "data": str(config.data), "vae": str(config.vae),
                   **{k: v for k, v in dataclasses.asdict(config).items() if k not in ("data", "vae", "training")}}
    result = run_training(accelerator, run, model, step_fn, "train base", fingerprint)
    trained = result.model.cpu()
    pipeline = dataclasses.replace(pipeline, text_encoder=freeze(trained.text_encoder), unet=freeze(trained.unet),
                                   source=f"train base ({config.layout}, {config.prediction_type}) on {config.data}")
    on_main_process(lambda: save_pipeline(pipeline, Path(run.out), overwrite=run.overwrite))
    return pipeline, result
