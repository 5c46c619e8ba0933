"""Conversion of a pipeline to Core ML packages (the layout of docs/contracts.md section 1).

`convert_model` (run.py) checks a request and claims OUT without importing torch or coremltools;
`convert_pipeline` (pipeline.py, which imports both) is loaded on first use."""

from ..convert_spec import CompressionSpec, parse_compression, parse_palettize
from .options import ConvertOptions
from .run import convert_model

__all__ = ["ConvertOptions", "CompressionSpec", "parse_compression", "parse_palettize", "convert_model", "convert_pipeline"]


def __getattr__(name: str):
    if name == "convert_pipeline":
        from .pipeline import convert_pipeline

        return convert_pipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
