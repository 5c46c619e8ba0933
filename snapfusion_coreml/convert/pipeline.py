"""Convert a whole pipeline into the output folder, atomically (pipeline.json written last)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..config import resolve_layout
from ..io import atomic_directory, write_json
from ..modeling.loading import load_pipeline
from ..pipeline import Pipeline
from ..tokenizer import save_tokenizer
from .components import component_specs
from .compress import NO_MIXED_RECIPE, MixedRecipe
from .manifest import MANIFEST, build_manifest
from .options import ConvertOptions
from .recipe import ComponentResult, convert_component


@dataclass
class ConvertSummary:
    out: Path
    results: list[ComponentResult]
    manifest: dict
    mapping: list[str] = field(default_factory=list)


def convert_pipeline(model: str | Path | Pipeline, options: ConvertOptions,
                     on_component: Callable[[str, str], None] | None = None,
                     mixed_recipe: MixedRecipe | None = None) -> ConvertSummary:
    """Convert MODEL (a folder, hub id or a loaded Pipeline) as `options` says.

    on_component(key, "start" | "done") reports progress. mixed_recipe computes `mixed:BITS`
    recipes (mixed_bits.mixed_bit_recipe; needed only when options ask for one).
    """
    # 1. load, mapping the UNet onto --layout if given
    mapping: list[str] = []
    pipeline, latent_side = prepare_pipeline(model, options, mapping)

    # 2. every component through the same recipe, into a temporary folder
    specs = component_specs(pipeline, latent_side, options.components, options.unet_batch)
    if mixed_recipe is None and any(options.compression_for(s.key, s.compress).mode == "mixed" for s in specs):
        raise ValueError(NO_MIXED_RECIPE)  # before any work
    results = []
    with atomic_directory(options.out, options.overwrite) as tmp:
        for spec in specs:
            if on_component:
                on_component(spec.key, "start")
            results.append(convert_component(spec, options, tmp, pipeline.source, mixed_recipe))
            if on_component:
                on_component(spec.key, "done")
        save_tokenizer(pipeline.tokenizer, tmp)
        manifest = build_manifest(pipeline, options, latent_side, results, {s.key: s.inputs for s in specs})
        write_json(tmp / MANIFEST, manifest)  # last: its presence marks the folder complete
    return ConvertSummary(Path(options.out), results, manifest, mapping)


def prepare_pipeline(model: str | Path | Pipeline, options: ConvertOptions,
                     mapping: list[str]) -> tuple[Pipeline, int]:
    """(pipeline with the UNet on options' layout and attention, latent side for the image size).

    Layout mapping reports are appended to `mapping`.
    """
    if isinstance(model, Pipeline):
        pipeline = model
    else:
        layout = resolve_layout(options.layout) if options.layout else None
        pipeline = load_pipeline(model, layout, options.attention, options.allow_pickle, mapping, options.base)
    if pipeline.unet.attention != options.attention:
        pipeline = _with_attention(pipeline, options)
    return pipeline, pipeline.check_image_size(options.image_size or pipeline.defaults.image_size)


def _with_attention(pipeline: Pipeline, options: ConvertOptions) -> Pipeline:
    """The same pipeline with the UNet rebuilt around another attention implementation."""
    import dataclasses

    from ..modeling.unet import SnapFusionUNet

    unet = SnapFusionUNet(pipeline.unet.layout, options.attention).eval()
    unet.load_state_dict(pipeline.unet.state_dict())
    return dataclasses.replace(pipeline, unet=unet)
