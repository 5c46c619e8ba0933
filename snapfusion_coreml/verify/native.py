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


def _load(path: Path, function: str | None = None):
    import coremltools as ct

    if function is None:
        return ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL)
    return ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.ALL, function_name=function)


def predict_chain(packages: list[Path], inputs: dict[str, np.ndarray], function: str | None = None) -> dict[str, np.ndarray]:
    """Run one package, or chunks in order (each takes what it names from the inputs and the
    earlier chunks' outputs); the last package's outputs as float32/int32 numpy arrays.
    `function`: the function of multifunction packages to run (None: one-function packages)."""
    from ..coreml.package import function_description

    available = dict(inputs)
    outputs: dict[str, np.ndarray] = {}
    for path in packages:
        model = _load(path, function)
        names = [f.name for f in function_description(model.get_spec(), function).input]
        outputs = {k: np.asarray(v) for k, v in model.predict({n: available[n] for n in names}).items()}
        available.update(outputs)
    return outputs
