"""coremltools' pass pipelines without two whole-program walks that most passes do not need.

1. coremltools 9.0's PassPipelineManager.apply_pipeline validates the whole program before the
   pipeline and again after each of its ~95 passes. Validation walks every op and every variable,
   so for a UNet of a few thousand ops it takes about a third of the conversion's CPU time
   (benchmarks/results/convert_memory.md). No pass relies on the validation of the pass before
   it: a pass that produced an invalid program is still caught, by the validation after the last
   pass of the pipeline.
2. Every time a pass leaves a block, coremltools recomputes, for every variable, the set of
   `constexpr_*` outputs upstream of it (Block._propagate_nonreplaceable_vars). Until a program
   has such an op (palettization adds them at the end) every one of those sets is empty, so the
   walk is skipped until a constexpr op first appears in the block; from then on it always runs.
3. Before casting an op to fp16, coremltools checks each fp32 constant input for magnitudes above
   fp16's 65504 (FP16ComputePrecision.fp16_overflow) through np.where on an extra axis: five int64
   index arrays per conv weight, 1.2 GB for one 2560x1280x3x3 SD-1.5 weight, the peak memory of
   the whole conversion. The same test is made here in 1M-value chunks.

The program written is the same byte for byte (tests/convert/test_passes.py).

    with lean_pass_pipelines():
        mlmodel = ct.convert(...)
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Iterator

import numpy as np

FP16_MAX = 65504.0


def apply_pipeline(prog, pass_pipeline) -> None:
    """Run `pass_pipeline` on `prog` in place, as coremltools does, validating once at the end."""
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY

    if pass_pipeline is None:
        raise ValueError("The pass_pipeline cannot be None.")
    pass_pipeline.validate()
    for pass_name in pass_pipeline.passes:
        graph_pass = PASS_REGISTRY[pass_name]
        graph_pass.set_options(pass_pipeline.get_options(pass_name))
        graph_pass(prog)
    prog.validate()


def _has_constexpr(block) -> bool:
    return any(op.op_type.startswith("constexpr_") or any(_has_constexpr(b) for b in op.blocks)
               for op in block.operations)


def _propagate_once_constexpr(original):
    """Block._propagate_nonreplaceable_vars, run for a block once it has (or had) a constexpr op."""
    seen: weakref.WeakSet = weakref.WeakSet()

    def propagate(block) -> None:
        if block in seen or _has_constexpr(block):
            seen.add(block)
            original(block)

    return propagate


def largest_finite_magnitude(value, chunk: int = 1 << 20) -> float:
    """max |v| over the values of `value` below 1e38 (inf and NaN left out), 0 when none are,
    computed `chunk` values at a time."""
    flat = np.ravel(value)
    largest = 0.0
    for start in range(0, flat.size, chunk):
        part = np.abs(flat[start:start + chunk])
        largest = max(largest, float(np.max(part, where=part < 1e38, initial=0.0)))
    return largest


def fp16_overflow(op) -> bool:
    """FP16ComputePrecision.fp16_overflow: does a constant fp32 input of `op` hold a finite value
    beyond fp16's range? (Then the op stays fp32.)"""
    for inputs in op.inputs.values():
        for var in inputs if isinstance(inputs, (list, tuple)) else [inputs]:
            if (var.op is not None and var.op.op_type == "const" and var.is_tensor_or_scalar_of(dtype="fp32")
                    and largest_finite_magnitude(var.op.val.val) > FP16_MAX):
                return True
    return False


@contextmanager
def lean_pass_pipelines() -> Iterator[None]:
    """Within the block, coremltools' pass pipelines run through apply_pipeline above, blocks
    without constexpr ops skip the upstream-constexpr walk, and the fp16 overflow test is
    fp16_overflow above."""
    from coremltools.converters.mil.mil.block import Block
    from coremltools.converters.mil.mil.passes.defs.quantization import FP16ComputePrecision
    from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipelineManager

    original_apply = PassPipelineManager.__dict__["apply_pipeline"]
    original_propagate = Block._propagate_nonreplaceable_vars
    original_overflow = FP16ComputePrecision.__dict__["fp16_overflow"]
    PassPipelineManager.apply_pipeline = staticmethod(apply_pipeline)
    Block._propagate_nonreplaceable_vars = _propagate_once_constexpr(original_propagate)
    FP16ComputePrecision.fp16_overflow = staticmethod(fp16_overflow)
    try:
        yield
    finally:
        PassPipelineManager.apply_pipeline = original_apply
        Block._propagate_nonreplaceable_vars = original_propagate
        FP16ComputePrecision.fp16_overflow = original_overflow
