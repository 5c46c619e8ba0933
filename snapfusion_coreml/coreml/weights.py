"""Which weights of a converted ML program are palettized (Apple's conventions, see
convert/compress.py): the selection both the converter and the mixed-bit analysis use."""

from __future__ import annotations

import numpy as np

GROUP_SIZE = 16  # output channels per look-up table with per-grouped-channel palettization (iOS 18)
# Only weights feeding these ops are palettized: the token embedding (gather), attention masks
# and other constants stay as they are.
WEIGHT_OPS = ("conv", "linear", "matmul")
# Apple's convention: a weight is compressed only when it has MORE elements than this; smaller
# ones (biases, norms, tiny projections) stay fp16, where a look-up table would save next to
# nothing. It is coremltools' OpPalettizerConfig weight_threshold (default 2048), which compresses
# a const "only if its total number of elements are greater than weight_threshold"; the converter
# passes it explicitly, so the selection here and coremltools' own check are one rule.
MIN_WEIGHT_SIZE = 2048


def large_weight(size: int) -> bool:
    """Whether a weight of `size` elements is large enough to be compressed (> MIN_WEIGHT_SIZE)."""
    return size > MIN_WEIGHT_SIZE


def palettizable_weights(mlmodel) -> dict[str, np.ndarray]:
    """const op name -> value of every weight that is palettized: fed only to conv, linear or
    matmul, rank >= 2, large_weight; in program order."""
    return palettizable_consts(mlmodel._mil_program.functions["main"])


def palettizable_consts(function) -> dict[str, np.ndarray]:
    """palettizable_weights of one MIL function (a converted program's, or one inside a pass)."""
    found = {}
    for op in function.operations:
        val = op.outputs[0].val if op.op_type == "const" else None
        children = op.outputs[0].child_ops if op.op_type == "const" else ()
        if (isinstance(val, np.ndarray) and val.dtype.kind == "f" and val.ndim >= 2 and large_weight(val.size)
                and children and all(c.op_type in WEIGHT_OPS for c in children)):
            found[op.name] = val
    return found
