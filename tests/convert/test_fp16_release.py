"""The fp16 cast inside lean_pass_pipelines: each fp32 weight leaves memory as its fp16 copy is
made, not when the cyclic garbage collector next walks the program (coreml/passes.py, point 4)."""

from __future__ import annotations

import gc
import weakref

import numpy as np

from snapfusion_coreml.coreml.passes import lean_pass_pipelines


def _program_and_weights():
    """A three-conv program, and weak references to its fp32 weight values."""
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(0)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8, 4, 4))])
    def prog(x):
        for i in range(3):
            x = mb.conv(x=x, weight=rng.standard_normal((8, 8, 3, 3)).astype(np.float32), pad_type="same", name=f"conv{i}")
        return x

    return prog, [weakref.ref(op.outputs[0].val) for op in _weight_consts(prog)]


def _weight_consts(prog) -> list:
    return [op for op in prog.functions["main"].operations
            if op.op_type == "const" and np.size(op.outputs[0].val) > 64]


def _cast_to_fp16(prog) -> None:
    """coremltools' default pipeline up to and including add_fp16_cast."""
    import coremltools as ct
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY

    passes = list(ct.PassPipeline.DEFAULT.passes)
    for name in passes[: passes.index("common::add_fp16_cast") + 1]:
        PASS_REGISTRY[name](prog)


def test_each_fp32_weight_is_released_by_the_cast():
    prog, weights = _program_and_weights()
    assert len(weights) == 3 and all(w() is not None for w in weights)
    gc.disable()  # released by reference counting alone
    try:
        with lean_pass_pipelines():
            _cast_to_fp16(prog)
        assert [w() for w in weights] == [None, None, None]
    finally:
        gc.enable()
    assert [op.outputs[0].val.dtype for op in _weight_consts(prog)] == [np.float16] * 3


def test_coremltools_own_cast_keeps_them_until_the_collector_runs():
    prog, weights = _program_and_weights()
    gc.disable()
    try:
        _cast_to_fp16(prog)
        assert all(w() is not None for w in weights)
    finally:
        gc.enable()
