"""The one weight-size threshold (coreml/weights.py): a weight is palettized only when it has more
than MIN_WEIGHT_SIZE elements, the line coremltools' OpPalettizerConfig weight_threshold draws."""

from __future__ import annotations

import numpy as np

from snapfusion_coreml.convert.compress import palettizer_config
from snapfusion_coreml.coreml.weights import MIN_WEIGHT_SIZE, large_weight, palettizable_consts


def test_the_selection_and_coremltools_draw_the_same_line():
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.optimize.coreml import OpPalettizerConfig, OptimizationConfig
    from coremltools.optimize.coreml._quantization_passes import palettize_weights as palettize_pass

    assert OpPalettizerConfig(mode="uniform", nbits=6).weight_threshold == MIN_WEIGHT_SIZE == 2048
    assert not large_weight(MIN_WEIGHT_SIZE) and large_weight(MIN_WEIGHT_SIZE + 1)
    rng = np.random.default_rng(0)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 32))], opset_version=ct.target.iOS16)
    def program(x):
        at = mb.linear(x=x, weight=rng.standard_normal((64, 32)).astype(np.float32))  # 2048 elements
        above = mb.linear(x=x, weight=rng.standard_normal((65, 32)).astype(np.float32))  # 2080
        return at, above

    function = program.functions["main"]
    selected = palettizable_consts(function)
    assert [v.size for v in selected.values()] == [65 * 32]
    # coremltools itself, asked to palettize every weight, leaves the 2048-element one alone too
    palettize_pass(OptimizationConfig(global_config=palettizer_config(6, "uniform", False))).apply(program)
    luts = [op for op in function.operations if op.op_type == "constexpr_lut_to_dense"]
    assert [tuple(op.outputs[0].shape) for op in luts] == [(65, 32)]
