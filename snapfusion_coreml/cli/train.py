"""`train autoencoder|latents|base|v-pred`, `distill steps`, `distill decoder`, `evolve`: parse options, call snapfusion_coreml.train."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .options import at_least, finite, print_json, stdout_console
from .training_options import AsJson, BatchSize, Overwrite, TrainingOptions, training_options

Out = Annotated[Path, typer.Option("--out", "-o", help="Model folder to write (convert and verify accept it).")]
Data = Annotated[Path, typer.Option(help="Image-text folder (images or .npy latents + .txt captions), a prompt-list file, or shapes[:SEED] (the procedural shapes data set).")]
Vae = Annotated[Optional[Path], typer.Option(help="Diffusers VAE folder whose encoder turns training images into latents.")]
DataSteps = Annotated[int, typer.Option(callback=at_least(1, "--data-steps"), help="Prompt lists only: DDIM steps when sampling training latents from the model.")]
CaptionDropout = Annotated[float, typer.Option(callback=finite("--caption-dropout"), help="Share of captions replaced by \"\" (the unconditional embedding).")]


def _report(what: str, out: Path, losses: list[float], as_json: bool, extra: str = "", **fields) -> None:
    """The result on stdout: two lines, or with --json one JSON object (`fields` added to it)."""
    if as_json:
        print_json({"out": str(out), "trained": what, "steps": len(losses),
                    "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None, **fields})
        return
    console = stdout_console()
    if losses:
        console.print(f"{what}: {len(losses)} steps, loss {losses[0]:.4g} -> {losses[-1]:.4g}{extra}", highlight=False)
    console.print(f"wrote {out}", highlight=False)


train_app = typer.Typer(help="Fine-tune a model.", no_args_is_help=True, rich_markup_mode=None)
distill_app = typer.Typer(help="Distil a model: fewer sampling steps, or a slimmer decoder.", no_args_is_help=True,
                          rich_markup_mode=None)


ImageSize = Annotated[int, typer.Option(callback=at_least(1, "--image-size"), help="Image side in pixels (latents are a multiple of 8 smaller).")]


@train_app.command("autoencoder")
@training_options(batch_size=8, lr=1e-3, ema_decay=0.0)
def autoencoder(
    data: Data, out: Out, image_size: ImageSize = 128,
    block_out_channels: Annotated[str, typer.Option(help="Channels per block, comma-separated (4 blocks: latents 8x smaller).")] = "8,16,32,32",
    layers_per_block: Annotated[int, typer.Option(callback=at_least(1, "--layers-per-block"), help="ResNet blocks per encoder block (decoder: one more).")] = 1,
    norm_num_groups: Annotated[int, typer.Option(callback=at_least(1, "--norm-num-groups"),
                                                 help="GroupNorm groups (must divide every width, halved ones too for a 0.5 slim decoder).")] = 4,
    kl_weight: Annotated[float, typer.Option(callback=finite("--kl-weight"), help="Weight of the KL term.")] = 1e-6,
    decoder: Annotated[Optional[Path], typer.Option(help="Model folder whose full-width decoder (and latent scale factor) is kept "
                                                         "frozen: only the encoder trains, for a model without one (image to image).")] = None,
    init_encoder: Annotated[Optional[Path], typer.Option(help="AutoencoderKL folder whose encoder (same architecture) starts the training.")] = None,
    *, training: TrainingOptions,
) -> None:
    """Train a KL autoencoder (a diffusers AutoencoderKL folder, the --vae of other commands)."""
    from ..train.autoencoder import AutoencoderConfig, train_autoencoder

    channels = _int_list(block_out_channels, "--block-out-channels")
    config = training.config(out, models=tuple(p for p in (decoder, init_encoder) if p))
    model, result = train_autoencoder(AutoencoderConfig(data, config, image_size, channels, layers_per_block,
                                                        norm_num_groups, kl_weight=kl_weight, decoder=decoder,
                                                        init_encoder=init_encoder))
    _report("autoencoder", out, result.losses, training.as_json, f"; latent scaling factor {model.config.scaling_factor:.4g}",
            scaling_factor=model.config.scaling_factor)


@train_app.command("latents")
def latents(
    vae: Annotated[Path, typer.Argument(help="Diffusers AutoencoderKL folder.")],
    data: Data, out: Out, image_size: ImageSize = 128,
    count: Annotated[int, typer.Option(callback=at_least(1, "--count"), help="Examples to encode (shapes: the first COUNT scenes).")] = 4096,
    batch_size: BatchSize = 32, overwrite: Overwrite = False,
    as_json: AsJson = False,
) -> None:
    """Encode images (or shapes[:SEED]) into a .npy latent folder with captions (--data of other commands)."""
    from ..io import check_separate
    from ..train.autoencoder import EncodeConfig, encode_latents

    check_separate(out, (vae, data))
    n = encode_latents(EncodeConfig(vae, data, out, count, image_size, batch_size, overwrite))
    if as_json:
        print_json({"out": str(out), "examples": n})
    else:
        stdout_console().print(f"encoded {n} examples\nwrote {out}")


@train_app.command("base")
@training_options(batch_size=32, lr=5e-4, ema_decay=0.999)
def base(
    data: Data,
    vae: Annotated[Path, typer.Option(help="Diffusers AutoencoderKL folder: its decoder is saved with the model, its encoder encodes images.")],
    out: Out,
    layout: Annotated[str, typer.Option(help="UNet layout preset or JSON (cross_attention_dim = --text-width).")] = "sd-v1.5-tiny",
    text_width: Annotated[int, typer.Option(callback=at_least(1, "--text-width"), help="CLIP text encoder hidden size.")] = 64,
    text_layers: Annotated[int, typer.Option(callback=at_least(1, "--text-layers"), help="CLIP text encoder layers.")] = 2,
    text_heads: Annotated[int, typer.Option(callback=at_least(1, "--text-heads"), help="CLIP text encoder attention heads.")] = 4,
    image_size: ImageSize = 128,
    prediction_type: Annotated[str, typer.Option(help="epsilon or v_prediction.")] = "epsilon",
    caption_dropout: CaptionDropout = 0.1,
    warmup_steps: Annotated[int, typer.Option(callback=at_least(0, "--warmup-steps"), help="Linear learning-rate warm-up steps.")] = 100,
    *, training: TrainingOptions,
) -> None:
    """Train a text encoder and a UNet from scratch, jointly (the teacher of the other stages)."""
    import dataclasses

    from ..train.base import BaseConfig, train_base

    run = dataclasses.replace(training.config(out, models=(vae,)), warmup_steps=warmup_steps)
    config = BaseConfig(data, vae, run, layout, text_width, text_layers, text_heads, image_size, prediction_type,
                        caption_dropout)
    _, result = train_base(config)
    _report("base model", out, result.losses, training.as_json)


def _int_list(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint=option) from None


@train_app.command("v-pred")
@training_options()
def v_pred(
    model: Annotated[str, typer.Argument(help="Epsilon-prediction MODEL folder.")],
    data: Data, out: Out, vae: Vae = None, caption_dropout: CaptionDropout = 0.1,
    data_steps: DataSteps = 32,
    train_text_encoder: Annotated[bool, typer.Option(
        "--train-text-encoder", help="Fine-tune the text encoder with the UNet (frozen otherwise).")] = False,
    *, training: TrainingOptions,
) -> None:
    """Fine-tune an epsilon-prediction model to v-prediction (L_ori = ||v_hat - v||^2)."""
    from ..train.vpred import VPredConfig, train_vpred

    _, result = train_vpred(VPredConfig(model, data, training.config(out, models=(model, vae)), caption_dropout, vae, data_steps,
                                        train_text_encoder=train_text_encoder))
    _report("v-prediction fine-tune", out, result.losses, training.as_json)


@distill_app.command("steps")
@training_options()
def steps(
    teacher: Annotated[str, typer.Argument(help="Teacher MODEL folder.")],
    data: Data, out: Out,
    teacher_steps: Annotated[int, typer.Option(help="Teacher sampling steps.")] = 32,
    student_steps: Annotated[int, typer.Option(help="Student sampling steps (must divide --teacher-steps).")] = 16,
    schedule: Annotated[str, typer.Option(help="direct (one stage) or progressive (halve per stage).")] = "direct",
    student_layout: Annotated[Optional[str], typer.Option(help="Student UNet layout preset or JSON [default: the teacher's].")] = None,
    cfg_probability: Annotated[float, typer.Option(callback=finite("--cfg-probability"), help="p: share of CFG-aware samples (0 vanilla, 1 CFG-aware).")] = 0.1,
    guidance_min: Annotated[float, typer.Option(callback=finite("--guidance-min"), help="w ~ U[min, max] for CFG-aware samples (w = 1: no guidance).")] = 2.0,
    guidance_max: Annotated[float, typer.Option(callback=finite("--guidance-max"))] = 14.0,
    gamma: Annotated[float, typer.Option(callback=finite("--gamma"), help="Weight of L_ori, rescaled to L_dstl's scale every step.")] = 0.2,
    vae: Vae = None, caption_dropout: CaptionDropout = 0.1,
    *, training: TrainingOptions,
) -> None:
    """Step distillation: teacher (T steps) -> student (S steps), vanilla / CFG-aware / mixed."""
    from ..train.distill_steps import DistillStepsConfig, distill_steps

    config = DistillStepsConfig(teacher, data, training.config(out, models=(teacher, vae)), teacher_steps, student_steps, schedule, student_layout,
                                cfg_probability, guidance_min, guidance_max, gamma, caption_dropout, vae)
    _, results = distill_steps(config)
    _report(f"step distillation {teacher_steps} -> {student_steps}", out, [loss for r in results for loss in r.losses],
            training.as_json)


@distill_app.command("decoder")
@training_options(lr=1e-4)
def decoder(
    teacher: Annotated[str, typer.Argument(help="Teacher MODEL folder (its UNet samples latents, its decoder teaches).")],
    prompts: Annotated[Path, typer.Option(help="Prompt-list file (or an image-text folder: captions only), or a .npy latent folder whose latents are decoded directly.")],
    out: Out,
    width_multiplier: Annotated[float, typer.Option(callback=finite("--width-multiplier"), help="Slim decoder width relative to the teacher's.")] = 0.5,
    sample_steps: Annotated[int, typer.Option(callback=at_least(1, "--sample-steps"), help="DDIM steps when sampling teacher latents.")] = 50,
    guidance_scale: Annotated[float, typer.Option(callback=finite("--guidance-scale"), help="CFG scale when sampling teacher latents.")] = 7.5,
    *, training: TrainingOptions,
) -> None:
    """Slim decoder by data distillation: MSE between the teacher's and the slim decoder's images."""
    from ..train.distill_decoder import DistillDecoderConfig, distill_decoder

    _, result = distill_decoder(DistillDecoderConfig(teacher, prompts, training.config(out, models=(teacher,)), width_multiplier, sample_steps, guidance_scale))
    _report("decoder distillation", out, result.losses, training.as_json)


@training_options(fixed=("resume",), resume=False, ema_decay=0.0)
def evolve_command(

    model: Annotated[str, typer.Argument(help="MODEL folder to evolve.")],
    data: Data, out: Out,
    latency_target_ms: Annotated[float, typer.Option(callback=finite("--latency-target-ms"), help="Target UNet block latency per step (ms, batch 2).")],
    latency_table: Annotated[Optional[Path], typer.Option(help="Device latency table JSON [default: cost-model estimates].")] = None,
    skip_probability: Annotated[float, typer.Option(callback=finite("--skip-probability"), help="Robust training: chance each block is skipped per step.")] = 0.1,
    iterations: Annotated[int, typer.Option(callback=at_least(1, "--iterations"), help="Evolve iterations (robust training + one round of actions).")] = 10,
    actions_per_step: Annotated[int, typer.Option(callback=at_least(1, "--actions-per-step"), help="Blocks removed or copied per iteration, at most.")] = 1,
    scorer: Annotated[str, typer.Option(help="clip (open_clip + --clip-weights), fidelity, or module:factory.")] = "fidelity",
    clip_weights: Annotated[Optional[Path], typer.Option(help="Local open_clip weights file for --scorer clip.")] = None,
    clip_model: Annotated[str, typer.Option(help="open_clip model name.")] = "ViT-g-14",
    *, training: TrainingOptions,
) -> None:
    """Robust training + architecture evolution (Algorithm 1) against a latency table."""
    from ..train.evolve import EvolveConfig, evolve

    run = training.config(out, models=(model,))
    config = EvolveConfig(model, data, run, latency_target_ms, latency_table, skip_probability, iterations,
                          actions_per_step, scorer, clip_weights, clip_model)
    _, log = evolve(config)
    if training.as_json:
        print_json({"out": str(out), "estimated_latency": latency_table is None, "iterations": log})
        return
    console = stdout_console()
    label = " (estimated)" if latency_table is None else ""
    for record in log:
        for act in record["actions"]:
            console.print(f"iteration {record['iteration']}: {act['action']} {act['block']}  dCLIP {act['dCLIP']:+.4g}  "
                          f"dLatency {act['dLatency_ms']:+.3f} ms{label}", highlight=False)
    if log:
        console.print(f"block latency {log[0]['latency_ms_before']:.2f} -> {log[-1]['latency_ms_after']:.2f} ms{label}; "
                      f"layouts in {run.work_dir / 'evolve'}", highlight=False)
    console.print(f"wrote {out}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.add_typer(distill_app, name="distill")
    app.command("evolve")(evolve_command)
