"""Convert a whole pipeline into the output folder, atomically (pipeline.json written last).

Components are loaded one at a time: the model folder is opened (configs, tokenizer, LoRA files,
the image size checked against the UNet) before any weights are read, then each component is
loaded, converted and released before the next, so the peak memory is that of the largest
component, not of the whole pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..config import UNetLayout, resolve_layout
from ..convert_spec import COMPONENTS, DEFAULT_COMPONENTS, UNPALETTIZED
from ..coreai.tools import check_coreai_installed
from ..errors import UserError
from ..image_size import ImageSize, latent_size
from ..io import atomic_directory
from ..memory import collections_of_new_objects_only
from ..modeling.loading import ModelFolder, load_pipeline
from ..modeling.lora import LoraFile, read_lora
from ..pipeline import Pipeline
from ..pipeline_json import PipelineManifest
from ..tokenizer import save_tokenizer
from .components import component_spec
from .compress import NO_MIXED_RECIPE, MixedRecipe
from .coreai_recipe import convert_component_coreai
from .options import ConvertOptions
from .pipeline_manifest import build_pipeline_manifest, choose_sampling
from .recipe import ComponentResult, convert_component


@dataclass
class ConvertSummary:
    out: Path
    results: list[ComponentResult]
    pipeline_manifest: PipelineManifest
    mapping: list[str] = field(default_factory=list)


class LoadedPipeline:
    """A Pipeline already in memory, offered the way ModelFolder offers a folder's components."""

    def __init__(self, pipeline: Pipeline, attention):
        self.pipeline, self.attention = pipeline, attention
        self.layout: UNetLayout = pipeline.unet.layout
        self.tokenizer, self.scheduler, self.defaults = pipeline.tokenizer, pipeline.scheduler, pipeline.defaults
        self.scheduler_config = pipeline.scheduler_config
        self.source = pipeline.source
        self.loras: tuple[LoraFile, ...] = ()
        self.has_encoder = pipeline.encoder is not None

    def load(self, name: str) -> torch.nn.Module:
        if name == "unet" and self.pipeline.unet.attention != self.attention:
            from ..modeling.unet import SnapFusionUNet

            unet = SnapFusionUNet(self.layout, self.attention).eval()  # same weights, other attention
            unet.load_state_dict(self.pipeline.unet.state_dict())
            return unet
        return getattr(self.pipeline, name).eval()


def open_model(model: str | Path | Pipeline, options: ConvertOptions,
               mapping: list[str]) -> tuple[ModelFolder | LoadedPipeline, tuple[int, int]]:
    """(the model's components on demand, latent (height, width) for options.image_size).

    Reads configs, the tokenizer and the LoRA files only; a bad image size or LoRA file fails
    here, before any model weights are read. Layout mapping reports are appended to `mapping`.
    """
    if isinstance(model, Pipeline):
        if options.loras:
            raise ValueError("LoRAs are merged while loading a model folder; merge them before building a Pipeline")
        source = LoadedPipeline(model, options.attention)
    elif Path(model).is_file():  # a single-file checkpoint: its one file holds every component
        layout = resolve_layout(options.layout) if options.layout else None
        loras = tuple(read_lora(spec) for spec in options.loras)
        pipeline = load_pipeline(model, layout, options.attention, options.allow_pickle, mapping, options.base, loras)
        source = LoadedPipeline(pipeline, options.attention)
    else:
        loras = tuple(read_lora(spec) for spec in options.loras)
        layout = resolve_layout(options.layout) if options.layout else None
        if options.base:
            raise UserError(f"expected a single-file checkpoint with --base {options.base}, got {model} "
                            "(a folder or hub id carries its own configs)")
        source = ModelFolder(model, layout, options.attention, options.allow_pickle, mapping, loras)
    image = options.image_size or ImageSize.square(source.defaults.image_size)
    return source, latent_size(image, source.layout.latent_divisor, source.layout.num_levels)


def convert_pipeline(model: str | Path | Pipeline, options: ConvertOptions,
                     on_component: Callable[[str, str], None] | None = None,
                     mixed_recipe: MixedRecipe | None = None) -> ConvertSummary:
    """Convert MODEL (a folder, hub id or a loaded Pipeline) as `options` says.

    on_component(key, "start" | "done") reports progress. mixed_recipe computes `mixed:BITS`
    recipes (mixed_bits.mixed_bit_recipe; needed only when options ask for one).
    """
    # 1. open the model: configs, tokenizer, LoRAs, image size (no weights yet)
    mapping: list[str] = []
    source, latent = open_model(model, options, mapping)
    sampling = choose_sampling(source, options)

    if options.format == "coreai":  # Apple's packages are there, or one line naming the extra, before any work
        check_coreai_installed("convert --format coreai")
    # 2. every component through the same recipe, into a temporary folder, one in memory at a time
    keys = [c for c in COMPONENTS if c in options.components]
    if "encoder" in keys and not source.has_encoder:
        if options.components != DEFAULT_COMPONENTS:
            raise UserError(f"expected a model with a VAE encoder for --components {','.join(options.components)}, "
                            f"got {source.source} without one (drop encoder from --components)")
        keys.remove("encoder")  # the default: every component the model has
    if mixed_recipe is None and any(options.compression_for(k, k not in UNPALETTIZED).mode == "mixed" for k in keys):
        raise ValueError(NO_MIXED_RECIPE)  # before any work
    results, inputs = [], {}
    with atomic_directory(options.out, options.overwrite) as tmp, collections_of_new_objects_only() as settle:
        for key in keys:
            if on_component:
                on_component(key, "start")
            spec = component_spec(key, source.load(key), source.layout, latent, sampling.unet_batch)
            if options.format == "coreai":
                results.append(convert_component_coreai(spec, options, tmp))
            else:
                results.append(convert_component(spec, options, tmp, source.source, mixed_recipe))
            inputs[key] = spec.inputs
            del spec
            settle()  # the component's program and weights go; what survives is set aside
            if on_component:
                on_component(key, "done")
        # 3. tokenizer, then pipeline.json, last: its presence marks the folder complete
        save_tokenizer(source.tokenizer, tmp)
        pipeline_manifest = build_pipeline_manifest(source, options, latent, results, inputs, sampling)
        pipeline_manifest.write(tmp)
    return ConvertSummary(Path(options.out), results, pipeline_manifest, mapping)


__all__ = ["ConvertSummary", "convert_pipeline", "open_model"]
