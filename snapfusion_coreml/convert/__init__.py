"""Conversion of a pipeline to Core ML packages (the layout of docs/contracts.md section 1)."""

from ..convert_spec import CompressionSpec, parse_compression, parse_palettize
from .options import ConvertOptions
from .pipeline import convert_pipeline

__all__ = ["ConvertOptions", "CompressionSpec", "parse_compression", "parse_palettize", "convert_pipeline"]
