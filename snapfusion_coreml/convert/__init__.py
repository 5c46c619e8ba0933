"""Conversion of a pipeline to Core ML packages (the layout of docs/contracts.md section 1)."""

from .options import ConvertOptions, CompressionSpec, parse_compression
from .pipeline import convert_pipeline

__all__ = ["ConvertOptions", "CompressionSpec", "parse_compression", "convert_pipeline"]
