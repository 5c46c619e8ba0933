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
4. The fp16 cast gives each fp32 weight a `cast` op whose value is the fp16 copy; the fp32
   constant stays in the program beside it until const_elimination folds the casts and
   dead_code_elimination drops the constants, passes later, and its memory comes back only when
   the cyclic garbage collector next walks the program (ops and variables refer to each other):
   every weight twice at once, 4.8 GiB for an SD-1.5 UNet, and a peak that moved by a GiB from run
   to run with the collector's timing. Here each weight's cast is folded as const_elimination folds
   it (same name, same place) right after the op is cast, and the fp32 constant left without
   consumers is removed and its value released at once.

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
    return any(var.op is not None and var.op.op_type == "const" and var.is_tensor_or_scalar_of(dtype="fp32")
               and largest_finite_magnitude(var.op.val.val) > FP16_MAX for var in _input_vars(op))


def _input_vars(op) -> list:
    """Every input variable of `op`, list-valued inputs flattened."""
    found = []
    for inputs in op.inputs.values():
        found.extend(inputs if isinstance(inputs, (list, tuple)) else [inputs])
    return found


def _fold_cast(cast, cache: dict) -> None:
    """const_elimination's folding of one `cast` of a constant: a const op of the same name before
    it takes its uses, and the cast leaves the block (and the pass's cache of casts, which
    keeps a cast for the constant's next consumer: it has none)."""
    from coremltools.converters.mil import Builder as mb

    out = cast.outputs[0]
    if not out.can_be_folded_to_const():
        return
    const = mb.const(val=out.val, before_op=cast, name=out.name)
    if cast.enclosing_block.try_replace_uses_of_var_after_op(anchor_op=cast, old_var=out, new_var=const):
        cache.pop(out.name, None)
        out.set_name(out.name + "_ignored")
        cast.remove_from_block()
    else:
        const.op.remove_from_block()


def _release_unused_constant(var) -> None:
    """Remove the constant op of `var` once nothing reads it, and drop its value now: the op's
    `val` parameter and its output both hold it, and the op sits in reference cycles, so left
    alone the value would wait for the cyclic collector."""
    const = var.op
    block = const.enclosing_block
    if var.child_ops or block is None or var in block.outputs:
        return
    const.remove_from_block()
    const.val._sym_val = None
    var._sym_val = None


def fold_casts_as_they_are_made(transform_op):
    """FP16ComputePrecision.transform_op, then, for each constant input whose one remaining
    consumer is now its cast, the cast folded (_fold_cast) and the fp32 constant removed
    (_release_unused_constant). A constant other ops still read keeps its cast for them, as
    coremltools does, and is folded by const_elimination."""

    def transform(self, op) -> None:
        constants = [v for v in _input_vars(op) if v.op is not None and v.op.op_type == "const"]
        transform_op(self, op)
        for var in constants:
            consumers = list(var.child_ops)
            if len(consumers) == 1 and consumers[0].op_type == "cast" and var.op.enclosing_block is not None:
                _fold_cast(consumers[0], self.current_cache_vars())
                _release_unused_constant(var)

    return transform


@contextmanager
def lean_pass_pipelines() -> Iterator[None]:
    """Within the block, coremltools' pass pipelines run through apply_pipeline above, blocks
    without constexpr ops skip the upstream-constexpr walk, the fp16 overflow test is
    fp16_overflow above and the fp16 cast folds its weights' casts as it makes them."""
    from coremltools.converters.mil.mil.block import Block
    from coremltools.converters.mil.mil.passes.defs.quantization import FP16ComputePrecision
    from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipelineManager

    original_apply = PassPipelineManager.__dict__["apply_pipeline"]
    original_propagate = Block._propagate_nonreplaceable_vars
    original_overflow = FP16ComputePrecision.__dict__["fp16_overflow"]
    own_transform = FP16ComputePrecision.__dict__.get("transform_op")  # None: CastTypeQuantization's
    PassPipelineManager.apply_pipeline = staticmethod(apply_pipeline)
    Block._propagate_nonreplaceable_vars = _propagate_once_constexpr(original_propagate)
    FP16ComputePrecision.fp16_overflow = staticmethod(fp16_overflow)
    FP16ComputePrecision.transform_op = fold_casts_as_they_are_made(FP16ComputePrecision.transform_op)
    try:
        yield
    finally:
        PassPipelineManager.apply_pipeline = original_apply
        Block._propagate_nonreplaceable_vars = original_propagate
        FP16ComputePrecision.fp16_overflow = original_overflow
        if own_transform is None:
            del FP16ComputePrecision.transform_op
        else:
            FP16ComputePrecision.transform_op = own_transform
