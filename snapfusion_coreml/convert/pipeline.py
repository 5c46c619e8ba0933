"""Convert a whole pipeline into the output folder, atomically (pipeline.json written last).

Components are loaded one at a time: the model folder is opened (configs, tokenizer, LoRA files,
the image size checked against the UNet) before any weights are read, then each component is
loaded, converted and released before the next, so the peak memory is that of the largest
component, not of the whole pipeline.

With several image sizes (options.image_sizes), each size-dependent component is traced and
converted once per size and written as one multifunction package (recipe.convert_multifunction);
pipeline.json then lists the sizes (`sizes`, docs/contracts.md section 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..config import UNetLayout, resolve_layout
from ..contracts.pipeline_json import PipelineManifest
from ..convert_spec import COMPONENTS, DEFAULT_COMPONENTS, UNPALETTIZED
from ..coreai.tools import check_coreai_installed
from ..errors import UserError
from ..image_size import ImageSize, function_name, latent_size
from ..io import atomic_directory
from ..memory import collections_of_new_objects_only
from ..modeling.loading import ModelFolder, load_pipeline
from ..modeling.lora import LoraFile, read_lora
from ..pipeline import Pipeline
from ..tokenizer import save_tokenizer
from .components import ComponentSpec, component_spec
from .compress import NO_MIXED_RECIPE, MixedRecipe
from .coreai_recipe import convert_component_coreai
from .options import ConvertOptions
from .pipeline_manifest import build_pipeline_manifest, choose_sampling
from .recipe import ComponentResult, convert_component, convert_multifunction


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


def size_latents(source: ModelFolder | LoadedPipeline, options: ConvertOptions) -> list[tuple[ImageSize, tuple[int, int]]]:
    """(image size, latent (height, width)) of every size options.sizes converts, the default
    first; a size the UNet cannot take fails here, before any weights are read."""
    images = [size or ImageSize.square(source.defaults.image_size) for size in options.sizes]
    return [(image, latent_size(image, source.layout.latent_divisor, source.layout.num_levels)) for image in images]


def size_specs(key: str, module: torch.nn.Module, source, latents: list[tuple[int, int]], unet_batch: int) -> list[ComponentSpec]:
    """The component's export specs, one per size; a component whose inputs do not depend on the
    size (the text encoder) gets one. A component is size-dependent through its spec's shapes alone,
    so any component with a latent- or image-shaped input becomes one function per size."""
    specs = [component_spec(key, module, source.layout, latent, unet_batch) for latent in latents]
    return specs[:1] if all(spec.inputs == specs[0].inputs for spec in specs) else specs


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
    sizes = size_latents(source, options)
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
            specs = size_specs(key, source.load(key), source, [latent for _, latent in sizes], sampling.unet_batch)
            if options.format == "coreai":
                results.append(convert_component_coreai(specs[0], options, tmp))
            elif len(specs) > 1:  # one function per size (image_{H}x{W}), the default first
                functions = [function_name(image) for image, _ in sizes]
                results.append(convert_multifunction(specs, functions, options, tmp, mixed_recipe))
            else:
                results.append(convert_component(specs[0], options, tmp, source.source, mixed_recipe))
            inputs[key] = specs[0].inputs
            del specs
            settle()  # the component's program and weights go; what survives is set aside
            if on_component:
                on_component(key, "done")
        # 3. tokenizer, then pipeline.json, last: its presence marks the folder complete
        save_tokenizer(source.tokenizer, tmp)
        pipeline_manifest = build_pipeline_manifest(source, options, latent, results, inputs, sampling,
                                                    sizes if options.multifunction else None)
        pipeline_manifest.write(tmp)
    return ConvertSummary(Path(options.out), results, pipeline_manifest, mapping)


__all__ = ["ConvertSummary", "convert_pipeline", "open_model", "size_latents"]
