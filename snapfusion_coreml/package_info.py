"""What is inside a converted folder or one .mlpackage: I/O, size, ops, compression, target."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .contracts.pipeline_json import Component, PipelineManifest
from .coreml.features import describe_features
from .coreml.tools import SPEC_VERSION_TARGETS
from .coreml.weights import large_weight
from .digests import dir_size
from .errors import UserError

_LUT_OPS = ("constexpr_lut_to_dense",)


def inspect_package(path: Path) -> dict[str, Any]:
    """Facts about one .mlpackage (readable on Linux: no Core ML runtime needed). A multifunction
    package (one function per image size) is described by its default function, and its
    functions are listed with their inputs and outputs."""
    from .coreml.package import function_description, function_names, load_mil, read_spec
    from .coreml.tools import quiet_coremltools

    quiet_coremltools()
    path = Path(path)
    spec = read_spec(path)
    names, default = function_names(spec)
    program = load_mil(path, default)
    ops: dict[str, int] = {}
    dense = palettized = 0
    bits: dict[int, int] = {}
    for op in program.functions[default].operations:
        ops[op.op_type] = ops.get(op.op_type, 0) + 1
        if op.op_type in _LUT_OPS:
            n = int(np.prod(op.outputs[0].shape))
            palettized += n
            b = _palette_bits(op)
            bits[b] = bits.get(b, 0) + n
        elif op.op_type == "const" and op.outputs[0].val is not None:
            val = op.outputs[0].val
            if isinstance(val, np.ndarray) and val.dtype.kind == "f" and large_weight(val.size):
                dense += val.size
    weights = dense + palettized
    meta = dict(spec.description.metadata.userDefined)
    return {
        "path": str(path),
        "size_bytes": dir_size(path),
        "deployment_target": SPEC_VERSION_TARGETS.get(spec.specificationVersion, f"spec v{spec.specificationVersion}"),
        "inputs": describe_features(function_description(spec).input),
        "outputs": describe_features(function_description(spec).output),
        "default_function": default,
        "functions": [{"name": name, "inputs": describe_features(function_description(spec, name).input),
                       "outputs": describe_features(function_description(spec, name).output)} for name in names],
        "op_counts": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
        "weights": weights,
        "palettized_share": palettized / weights if weights else 0.0,
        "palettized_bits": {str(k): v for k, v in sorted(bits.items())},
        "average_bits": (sum(k * v for k, v in bits.items()) + 16 * dense) / weights if weights else 0.0,
        "metadata": meta,
    }


def _palette_bits(op) -> int:
    lut = tuple(op.inputs["lut"].shape)
    indices = tuple(op.inputs["indices"].shape)
    out = tuple(op.outputs[0].shape)
    # iOS18 LUTs carry a trailing vector-size axis and the indices have the output's rank
    entries = lut[-2] if len(lut) == len(out) + 2 or (len(lut) >= 2 and indices == out) else lut[-1]
    return int(round(math.log2(entries)))


def inspect_path(path: Path) -> dict[str, Any]:
    """A converted folder (every package + the pipeline.json summary) or a single package."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"nothing to inspect at {path}")
    if path.suffix == ".mlpackage":
        return {"packages": [inspect_package(path)]}
    pipeline_manifest = PipelineManifest.read(path)
    packages = sorted(path.glob("*.mlpackage"))
    source, sampler = pipeline_manifest.source, pipeline_manifest.sampler
    return {
        "folder": str(path),
        "size_bytes": dir_size(path),
        "pipeline": {
            "prediction_type": pipeline_manifest.prediction_type,
            "image": pipeline_manifest.image.to_dict(),
            "sizes": None if pipeline_manifest.sizes is None else [size.to_dict() for size in pipeline_manifest.sizes],
            "loras": [lora.to_dict() for lora in source.loras],
            "unet_layout": source.unet_layout,
            "source_model": source.model,
            "sampler": {"name": sampler.name, "scheduler_class": sampler.settings.scheduler_class,
                        "timestep_spacing": sampler.settings.timestep_spacing, "default_steps": sampler.default_steps,
                        "timesteps": sampler.to_dict()["timesteps"], "unet_calls": unet_calls(pipeline_manifest)},
            "guidance": pipeline_manifest.guidance.to_dict(),
            "components": {k: _component_summary(c) for k, c in pipeline_manifest.components.items()},
        },
        "packages": [inspect_package(p) for p in packages],
    }


def unet_calls(pipeline_manifest: PipelineManifest) -> int:
    """UNet evaluations per image at the folder's default guidance: calls x 2 where CFG runs."""
    from .guidance import runs_cfg

    guidance = pipeline_manifest.guidance
    return pipeline_manifest.sampler.calls * (2 if runs_cfg(guidance.default_scale, guidance.embedding_dim) else 1)


def _component_summary(component: Component) -> dict[str, Any]:
    """Files and compression of one component, with a mixed recipe's layers counted per bit width."""
    compression = component.compression.to_dict() if component.compression else {}
    layers = compression.pop("layers", None)
    return {"files": component.files, "compression": compression, "mixed_layers": len(layers or {}),
            "mixed_bits_histogram": _bits_histogram(layers)}


def _bits_histogram(layers: dict[str, int] | None) -> dict[str, int]:
    """bits -> number of layers of a mixed recipe (pipeline.json compression.layers); {} if none."""
    counts: dict[int, int] = {}
    for bits in (layers or {}).values():
        counts[int(bits)] = counts.get(int(bits), 0) + 1
    return {str(b): n for b, n in sorted(counts.items())}
