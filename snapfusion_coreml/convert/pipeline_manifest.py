"""The pipeline manifest of a conversion: everything the Swift side needs and nothing it must
guess (pipeline.json, docs/contracts.md section 2; records in snapfusion_coreml/pipeline_json.py)."""

from __future__ import annotations

from .. import __version__
from ..image_size import VAE_FACTOR, ImageSize
from ..pipeline_json import Component, Compression, Guidance, Latent, LoraRecord, NoiseSchedule, PipelineManifest, Sampler, Source, TensorSpec, Tokenizer
from ..schedule import FINAL_ALPHA_CUMPROD, timesteps
from .coreai_recipe import COREAI_DEPLOYMENT_TARGET
from .options import ConvertOptions


def build_pipeline_manifest(source, options: ConvertOptions, latent: tuple[int, int], results: list,
                            inputs: dict) -> PipelineManifest:
    """pipeline.json of a conversion. source: the opened model (convert.pipeline.open_model:
    layout, scheduler, defaults, tokenizer, source, loras); latent: (height, width); results: the
    ComponentResults; inputs: component key -> its TensorSpecs."""
    from ..modeling.unet import unet_parameters

    sched, defaults, layout = source.scheduler, source.defaults, source.layout
    tok = source.tokenizer
    height, width = latent
    components = {}
    for result in results:
        components[result.key] = Component(
            file=result.files[0] if len(result.files) == 1 else None,
            chunks=tuple(result.files) if len(result.files) > 1 else None,
            inputs=tuple(inputs[result.key]),
            outputs=tuple(TensorSpec(o["name"], tuple(o["shape"]), o["dtype"]) for o in result.outputs),
            sha256=result.sha256,
            precision="float16",
            deployment_target=COREAI_DEPLOYMENT_TARGET if options.format == "coreai" else options.target,
            attention=options.attention.value if result.key == "unet" else None,
            compression=Compression.from_dict(result.compression),
            size_bytes=result.size_bytes,
            format=options.format,
        )
    return PipelineManifest(
        tool_version=__version__,
        source=Source(model=source.source, unet_layout=layout.name, unet_parameters=unet_parameters(layout),
                      base=_base(options), loras=tuple(LoraRecord(**lora.record()) for lora in source.loras)),
        prediction_type=sched.prediction_type,
        image=ImageSize(height * VAE_FACTOR, width * VAE_FACTOR),
        latent=Latent(layout.in_channels, height, width, defaults.latent_scale_factor),
        noise_schedule=NoiseSchedule(sched.num_train_timesteps, sched.beta_start, sched.beta_end, sched.beta_schedule),
        sampler=Sampler(name="ddim", eta=0.0, timestep_spacing=sched.timestep_spacing, steps_offset=sched.steps_offset,
                        default_steps=defaults.steps, timesteps=tuple(timesteps(sched, defaults.steps)),
                        final_alpha_cumprod=FINAL_ALPHA_CUMPROD),
        guidance=Guidance(defaults.guidance_scale, options.unet_batch),
        tokenizer=Tokenizer(vocab="vocab.json", merges="merges.txt", max_length=int(tok.model_max_length),
                            bos_token_id=int(tok.bos_token_id), eos_token_id=int(tok.eos_token_id),
                            pad_token_id=int(tok.pad_token_id)),
        components=components,
    )


def _base(options: ConvertOptions) -> str | None:
    """source.base: the architecture a single-file checkpoint was read with (None otherwise)."""
    if not options.base:
        return None
    from ..modeling.single_file import base_label

    return base_label(options.base)
