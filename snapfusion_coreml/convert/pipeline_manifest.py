"""The pipeline manifest of a conversion: everything the Swift side needs and nothing it must
guess (pipeline.json, docs/contracts.md section 2; records in snapfusion_coreml/contracts/pipeline_json.py)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import __version__
from ..contracts.pipeline_json import Component, Guidance, Latent, LoraRecord, NoiseSchedule, PipelineManifest, Size, Source, TensorSpec, Tokenizer
from ..guidance import runs_cfg
from ..image_size import VAE_FACTOR, ImageSize
from ..io import recorded_path
from ..samplers.record import SamplerRecord
from ..samplers.settings import model_settings
from .coreai_recipe import COREAI_DEPLOYMENT_TARGET
from .options import ConvertOptions


@dataclass(frozen=True)
class SamplingChoice:
    """How the converted folder samples: the planned sampler, the default guidance scale, the
    UNet batch (1 where no CFG batch runs) and the guidance-embedding size of the UNet (or None)."""

    record: SamplerRecord
    guidance_scale: float
    unet_batch: int
    embedding_dim: int | None


def choose_sampling(source, options: ConvertOptions) -> SamplingChoice:
    """The model's sampler (or --sampler) planned for its default steps (or --steps); unet_batch
    1 when the default guidance runs no CFG batch (w <= 1, or a guidance embedding), unless
    --unet-batch says otherwise. Reads configs only."""
    from ..samplers.plan import plan

    settings = model_settings(source.scheduler, source.scheduler_config, f"{source.source}/scheduler",
                              options.sampler, options.eta)
    record = plan(settings, source.scheduler, options.steps or source.defaults.steps)
    w = source.defaults.guidance_scale if options.guidance is None else options.guidance
    embedding = source.layout.time_cond_proj_dim
    batch = options.unet_batch or (2 if runs_cfg(w, embedding) else 1)
    return SamplingChoice(record, w, batch, embedding)


def build_pipeline_manifest(source, options: ConvertOptions, latent: tuple[int, int], results: list,
                            inputs: dict, sampling: SamplingChoice,
                            sizes: list[tuple[ImageSize, tuple[int, int]]] | None = None) -> PipelineManifest:
    """pipeline.json of a conversion. source: the opened model (convert.pipeline.open_model:
    layout, scheduler, defaults, tokenizer, source, loras); latent: (height, width); results: the
    ComponentResults; inputs: component key -> its TensorSpecs; sampling: choose_sampling's;
    sizes: (image, latent) of every function of a several-size folder, the default first."""
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
            compression=result.compression,
            size_bytes=result.size_bytes,
            format=options.format,
        )
    return PipelineManifest(
        tool_version=__version__,
        source=Source(model=recorded_path(source.source), unet_layout=layout.name, unet_parameters=unet_parameters(layout),
                      base=_base(options), loras=tuple(LoraRecord(**lora.record()) for lora in source.loras)),
        prediction_type=sched.prediction_type,
        image=ImageSize(height * VAE_FACTOR, width * VAE_FACTOR),
        latent=Latent(layout.in_channels, height, width, defaults.latent_scale_factor),
        noise_schedule=NoiseSchedule(sched.num_train_timesteps, sched.beta_start, sched.beta_end, sched.beta_schedule),
        sampler=sampling.record,
        guidance=Guidance(sampling.guidance_scale, sampling.unet_batch, sampling.embedding_dim),
        tokenizer=Tokenizer(vocab="vocab.json", merges="merges.txt", max_length=int(tok.model_max_length),
                            bos_token_id=int(tok.bos_token_id), eos_token_id=int(tok.eos_token_id),
                            pad_token_id=int(tok.pad_token_id)),
        components=components,
        sizes=None if sizes is None else tuple(Size.of(image, size_latent) for image, size_latent in sizes),
    )


def _base(options: ConvertOptions) -> str | None:
    """source.base: the architecture a single-file checkpoint was read with (None otherwise)."""
    if not options.base:
        return None
    from ..modeling.single_file import base_label

    return base_label(options.base)
