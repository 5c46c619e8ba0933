"""What is inside a converted folder or one .mlpackage: I/O, size, ops, compression, target."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .convert.components import describe_features
from .convert.manifest import MANIFEST, check_manifest
from .coreml.tools import SPEC_VERSION_TARGETS
from .errors import UserError
from .io import dir_size, read_json

_LUT_OPS = ("constexpr_lut_to_dense",)


def inspect_package(path: Path) -> dict[str, Any]:
    """Facts about one .mlpackage (readable on Linux: no Core ML runtime needed)."""
    from .coreml.tools import quiet_coremltools
    from .verify.program import load_mil

    quiet_coremltools()
    import coremltools as ct

    path = Path(path)
    try:
        spec = ct.utils.load_spec(str(path))
    except Exception as exc:
        raise UserError(f"expected a Core ML package, got an unreadable one: {exc} (in {path})") from None
    program = load_mil(path)
    ops: dict[str, int] = {}
    dense = palettized = 0
    bits: dict[int, int] = {}
    for op in program.functions["main"].operations:
        ops[op.op_type] = ops.get(op.op_type, 0) + 1
        if op.op_type in _LUT_OPS:
            n = int(np.prod(op.outputs[0].shape))
            palettized += n
            b = _palette_bits(op)
            bits[b] = bits.get(b, 0) + n
        elif op.op_type == "const" and op.outputs[0].val is not None:
            val = op.outputs[0].val
            if isinstance(val, np.ndarray) and val.dtype.kind == "f" and val.size >= 2048:
                dense += val.size
    weights = dense + palettized
    meta = dict(spec.description.metadata.userDefined)
    return {
        "path": str(path),
        "size_bytes": dir_size(path),
        "deployment_target": SPEC_VERSION_TARGETS.get(spec.specificationVersion, f"spec v{spec.specificationVersion}"),
        "inputs": describe_features(spec.description.input),
        "outputs": describe_features(spec.description.output),
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
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise UserError(f"expected {MANIFEST} in {path} (an incomplete or foreign folder), found none")
    manifest = check_manifest(read_json(manifest_path, MANIFEST), str(manifest_path))
    packages = sorted(path.glob("*.mlpackage"))
    return {
        "folder": str(path),
        "size_bytes": dir_size(path),
        "pipeline": {
            "prediction_type": manifest["prediction_type"],
            "image": manifest.get("image") or {k: manifest["latent"][k] * 8 for k in ("height", "width")},
            "loras": manifest.get("source", {}).get("loras", []),
            "unet_layout": manifest.get("source", {}).get("unet_layout"),
            "source_model": manifest.get("source", {}).get("model"),
            "sampler": {k: manifest["sampler"].get(k) for k in ("name", "timestep_spacing", "default_steps", "timesteps")},
            "guidance": manifest.get("guidance"),
            "components": {k: {"files": [v["file"]] if v.get("file") else v.get("chunks"),
                               "compression": {kk: vv for kk, vv in v.get("compression", {}).items() if kk != "layers"},
                               "mixed_layers": len(v.get("compression", {}).get("layers", {}) or {}),
                               "mixed_bits_histogram": _bits_histogram(v.get("compression", {}).get("layers"))}
                           for k, v in manifest["components"].items()},
        },
        "packages": [inspect_package(p) for p in packages],
    }


def _bits_histogram(layers: dict[str, int] | None) -> dict[str, int]:
    """bits -> number of layers of a mixed recipe (pipeline.json compression.layers); {} if none."""
    counts: dict[int, int] = {}
    for bits in (layers or {}).values():
        counts[int(bits)] = counts.get(int(bits), 0) + 1
    return {str(b): n for b, n in sorted(counts.items())}
