"""Fine-tune an epsilon-prediction model to v-prediction (SnapFusion paper Sec. 4, first stage).

L_ori = ||v_hat(t, z_t, c) - v||^2 with v = alpha_t * eps - sigma_t * x and t ~ U{0, ..., 999}.
Data-free runs (prompt lists) draw x0 by sampling the frozen original epsilon model.
With train_text_encoder the text encoder is fine-tuned with the UNet (the pair of `train base`),
as diffusers' training scripts offer; otherwise it stays frozen and is saved unchanged.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..pipeline import Pipeline
from ..schedule import alphas_cumprod
from . import losses
from .common import LatentSource, TextConditioner, freeze, load_model, load_vae_encoder, make_stream, noise_batch, uniform_timesteps
from .loop import TrainingConfig, TrainResult, make_accelerator, on_main_process, run_training


@dataclass(frozen=True)
class VPredConfig:
    model: str  # MODEL folder of the epsilon-prediction model
    data: Path  # image-text folder, .npy latent folder or prompt-list file
    training: TrainingConfig
    caption_dropout: float = 0.1
    vae: Path | None = None  # diffusers VAE folder with an encoder (image data only)
    data_steps: int = 32  # DDIM steps when sampling x0 from the original model (prompt lists)
    data_guidance: float = 7.5
    train_text_encoder: bool = False


def train_vpred(config: VPredConfig) -> tuple[Pipeline, TrainResult]:
    from ..modeling.loading import save_pipeline
    from ..tokenizer import tokenize
    from .base import TextToImage

    # 1. load models: the frozen original (data-free x0) and the trainable copy
    config.training.validate()
    original = load_model(config.model, "the epsilon-prediction")
    if original.scheduler.prediction_type != "epsilon":
        raise UserError(f"expected an epsilon-prediction model, got prediction_type "
                        f"{original.scheduler.prediction_type!r} (in {config.model}/scheduler/scheduler_config.json)")
    run = config.training
    accelerator = make_accelerator(run)
    device = accelerator.device
    student = copy.deepcopy(original.unet).train().requires_grad_(True)
    if config.train_text_encoder:
        student = TextToImage(copy.deepcopy(original.text_encoder), student).train().requires_grad_(True)
    freeze(original.unet).to(device)
    text = TextConditioner(original, device)

    # 2. data
    stream = make_stream(config.data, run, config.caption_dropout, original.defaults.image_size, accelerator)
    vae = load_vae_encoder(config.vae).to(device) if config.vae else None
    rank, world = accelerator.process_index, accelerator.num_processes
    source = LatentSource(original, text, original.check_image_size(original.defaults.image_size), run.seed,
                          rank, vae, config.data_steps, config.data_guidance, world)
    cumprod = alphas_cumprod(original.scheduler)

    # 3. the loss of one micro-batch
    def step_fn(model, micro_step):
        batch = stream.batch(micro_step)
        x0 = source(batch, micro_step, device)
        t = uniform_timesteps(x0.shape[0], original.scheduler, run.seed, micro_step, rank, device, world)
        noised = noise_batch(x0, t, cumprod, run.seed, micro_step, rank, world)
        if config.train_text_encoder:
            prediction = model(noised.z_t, t.float(), tokenize(original.tokenizer, batch.captions).to(device))
        else:
            prediction = model(noised.z_t, t.float(), text(batch.captions))
        return losses.original_loss(prediction.float(), x0, noised.eps, noised.alpha, noised.sigma, "v_prediction"), {}

    # 4. train and save with prediction_type v_prediction
    fingerprint = {"kind": "train-v-pred", "model": str(config.model), "data": str(config.data),
                   "caption_dropout": config.caption_dropout, "data_steps": config.data_steps,
                   "data_guidance": config.data_guidance, "train_text_encoder": config.train_text_encoder}
    result = run_training(accelerator, run, student, step_fn, "train v-pred", fingerprint)
    trained = result.model.cpu()
    unet, text_encoder = ((trained.unet, freeze(trained.text_encoder)) if config.train_text_encoder
                          else (trained, original.text_encoder))
    tuned = dataclasses.replace(original, unet=freeze(unet), text_encoder=text_encoder,
                                scheduler=dataclasses.replace(original.scheduler, prediction_type="v_prediction"),
                                source=f"v-prediction fine-tune of {config.model}")
    tuned.text_encoder.cpu()
    on_main_process(lambda: save_pipeline(tuned, Path(run.out), overwrite=run.overwrite))
    return tuned, result
