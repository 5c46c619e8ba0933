"""Slim decoder by data distillation (SnapFusion paper Sec. 3.2): no image data needed.

Latents come from sampling the teacher text-to-image model with prompts (DDIM, CFG), or, given a
.npy latent folder, are read from it (cheaper and closer to the autoencoder's own latents); the
full decoder and the slim one both decode them and the slim one minimises the MSE between the two
images. The slim decoder starts as the full one channel-pruned by L2 norm (prune_decoder).
Fresh noise every step gives unlimited pairs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError
from ..pipeline import Pipeline
from .common import LatentSource, TextConditioner, freeze, load_model, make_stream
from .loop import TrainingConfig, TrainResult, make_accelerator, on_main_process, run_training


@dataclass(frozen=True)
class DistillDecoderConfig:
    teacher: str  # MODEL folder: its UNet samples latents, its decoder is the teacher decoder
    prompts: Path  # prompt-list file (or an image-text folder: only its captions are used)
    training: TrainingConfig
    width_multiplier: float = 0.5  # of the teacher decoder's width (SnapFusion: 0.5)
    sample_steps: int = 50  # DDIM steps when sampling teacher latents (the paper's 50)
    guidance_scale: float = 7.5


def distill_decoder(config: DistillDecoderConfig) -> tuple[Pipeline, TrainResult]:
    from ..modeling.decoder_pruning import prune_decoder
    from ..modeling.loading import save_pipeline

    # 1. load models: frozen teacher pipeline, slim student decoder pruned from its decoder
    config.training.validate()
    if not 0.0 < config.width_multiplier < 1.0:
        raise UserError(f"expected a width multiplier in (0, 1), got {config.width_multiplier}")
    teacher = load_model(config.teacher, "teacher")
    run = config.training
    accelerator = make_accelerator(run)
    device = accelerator.device
    student, report = prune_decoder(teacher.decoder, config.width_multiplier)
    student.train().requires_grad_(True)
    full = freeze(teacher.decoder).to(device)
    freeze(teacher.unet).to(device)
    text = TextConditioner(teacher, device)

    # 2. data: captions only; latents from the teacher
    stream = make_stream(config.prompts, run, 0.0, teacher.defaults.image_size, accelerator)
    source = LatentSource(teacher, text, teacher.check_image_size(teacher.defaults.image_size), run.seed,
                          accelerator.process_index, None, config.sample_steps, config.guidance_scale,
                          accelerator.num_processes)
    scale = teacher.defaults.latent_scale_factor

    # 3. the loss of one micro-batch: MSE between the two decoders' images
    def step_fn(model, micro_step):
        batch = stream.batch(micro_step)
        if batch.latents is not None:
            z = batch.latents.to(device) / scale
        else:
            z = source.teacher_samples(batch.captions, micro_step, device) / scale
        with torch.no_grad(), accelerator.autocast():
            target = full(z).float()
        return torch.nn.functional.mse_loss(model(z).float(), target), {}

    # 4. train and save the pipeline with the slim decoder
    fingerprint = {"kind": "distill-decoder", "teacher": str(config.teacher), "prompts": str(config.prompts),
                   "width_multiplier": config.width_multiplier, "sample_steps": config.sample_steps,
                   "guidance_scale": config.guidance_scale}
    result = run_training(accelerator, run, student, step_fn, "distill decoder", fingerprint)
    slim = dataclasses.replace(teacher, decoder=freeze(result.model.cpu()), unet=teacher.unet.cpu(),
                               source=f"slim decoder (x{config.width_multiplier} width, "
                                      f"{report['params_before']} -> {report['params_after']} parameters) of {config.teacher}")
    slim.text_encoder.cpu()
    on_main_process(lambda: save_pipeline(slim, Path(run.out), overwrite=run.overwrite))
    return slim, result
