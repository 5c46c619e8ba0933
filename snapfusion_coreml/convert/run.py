"""One `convert` request: check the model against the options from config files alone (no torch,
no coremltools: bad input fails in well under a second), claim OUT, then convert (pipeline.py)."""

from __future__ import annotations

from typing import Callable

from ..assets import default_model_dir
from ..coreai.tools import check_coreai_installed
from ..io import claim_output
from ..modeling.diffusers_config import check_image_size_fits
from ..modeling.source import resolve_model_path
from .options import ConvertOptions


def convert_model(model: str | None, options: ConvertOptions, on_component: Callable[[str, str], None] | None = None,
                  mixed_recipe=None):
    """Convert MODEL (a folder, single-file checkpoint or hub id; default the bundled model) as
    `options` say and return the ConvertSummary. Before any work: Core AI's packages for
    --format coreai, the LoRA files, the model path, every image size against the UNet's config,
    then OUT (absent or --overwrite, no other writer, no input inside it)."""
    if options.format == "coreai":
        check_coreai_installed("convert --format coreai")
    for spec in options.loras:
        spec.check_file()
    source = str(model or default_model_dir())
    folder = resolve_model_path(source, allow_file=True)
    for size in options.sizes:
        check_image_size_fits(size, folder, options.layout)
    with claim_output(options.out, options.overwrite, inputs=[source, options.layout]):
        from ..memory import unmap_large_allocations
        from .pipeline import convert_pipeline

        unmap_large_allocations()  # freed weights and activations leave the process (memory.py)
        return convert_pipeline(source, options, on_component, mixed_recipe)
