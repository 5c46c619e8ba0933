"""Core ML's own runtime (MLModel.predict), run beside the interpreter where it exists: macOS.

coremltools converts and saves on any OS, but its prediction entry point is a native library
shipped for Darwin only; on Linux `verify` records why this mode was skipped instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

MODE = "coreml"


def unavailable_reason() -> str | None:
    """None where MLModel.predict can run, else a one-line reason."""
    if sys.platform != "darwin":
        return f"Core ML prediction (mode '{MODE}') needs macOS; this is {sys.platform}, so only the interpreter ran"
    return None


def _load(path: Path):
    import coremltools as ct

    return ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)


def predict_chain(packages: list[Path], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run one package, or chunks in order (each takes what it names from the inputs and the
    earlier chunks' outputs); the last package's outputs as float32/int32 numpy arrays."""
    available = dict(inputs)
    outputs: dict[str, np.ndarray] = {}
    for path in packages:
        model = _load(path)
        names = [f.name for f in model.get_spec().description.input]
        outputs = {k: np.asarray(v) for k, v in model.predict({n: available[n] for n in names}).items()}
        available.update(outputs)
    return outputs
