"""Conversion of a pipeline to Core ML packages (the layout of docs/contracts.md section 1)."""

from .options import CompressionSpec, ConvertOptions, parse_compression, parse_palettize
from .pipeline import convert_pipeline

__all__ = ["ConvertOptions", "CompressionSpec", "parse_compression", "parse_palettize", "convert_pipeline"]
