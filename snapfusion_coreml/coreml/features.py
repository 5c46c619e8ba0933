"""Core ML feature descriptions as plain values: the numpy dtype of each contract dtype name, and a
package's declared inputs or outputs as name/shape/dtype records (what `convert` checks, `verify`
compares and `inspect` prints)."""

from __future__ import annotations

from typing import Any

import numpy as np

NUMPY_DTYPES = {"float32": np.float32, "int32": np.int32}


def describe_features(features) -> list[dict[str, Any]]:
    out = []
    for f in features:
        arr = f.type.multiArrayType
        dtype = {65568: "float32", 65552: "float16", 131104: "int32"}.get(arr.dataType, str(arr.dataType))
        out.append({"name": f.name, "shape": [int(d) for d in arr.shape], "dtype": dtype})
    return out
