"""Conversion through lean pass pipelines, and the PyTorch module released early: the
same packages as coremltools' own pipeline manager writes, and invalid programs still refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snapfusion_coreml.convert.components import component_specs
from snapfusion_coreml.convert.package import save_package

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def two_head_pipeline():
    """The tiny pipeline with the micro UNet layout at two heads (split-einsum attention splits and
    joins heads as in full-size layouts): every kind of op the passes meet, in a third of the tiny
    layout's ops."""
    from micro_layout import micro_layout

    from snapfusion_coreml.modeling.factory import build_tiny_pipeline

    return build_tiny_pipeline(micro_layout(heads=2), prediction_type="v_prediction")


def _package_files(path):
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("palettize", [None, "6"])
@pytest.mark.slow
def test_lean_pipelines_write_the_same_package_as_coremltools(two_head_pipeline, tmp_path, monkeypatch, palettize):
    """fp16, and 6-bit palettization inside the pipeline (constexpr ops appear at its end)."""
    from snapfusion_coreml.convert import ConvertOptions, parse_palettize
    from snapfusion_coreml.convert.compress import conversion_pass_pipeline
    from snapfusion_coreml.convert.recipe import to_coreml

    compression, per_component = parse_palettize(palettize or "none", "kmeans")
    options = ConvertOptions(out=tmp_path / "out", compression=compression, component_compression=per_component)
    spec = component_specs(two_head_pipeline, 8, ("unet",), 2)[0]
    ours = to_coreml(spec, "iOS16", conversion_pass_pipeline(spec, options))
    monkeypatch.setattr("snapfusion_coreml.convert.recipe.lean_pass_pipelines", _coremltools_own_manager)
    theirs = to_coreml(spec, "iOS16", conversion_pass_pipeline(spec, options))
    save_package(ours, tmp_path / "ours.mlpackage")
    save_package(theirs, tmp_path / "theirs.mlpackage")
    assert _package_files(tmp_path / "ours.mlpackage") == _package_files(tmp_path / "theirs.mlpackage")
    if palettize:
        assert "constexpr_lut_to_dense" in (tmp_path / "ours.mlpackage").joinpath("Data/com.apple.CoreML/model.mlmodel").read_bytes().decode("latin-1")


class _coremltools_own_manager:
    """Stands in for lean_pass_pipelines: leaves coremltools' manager in place."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_pass_that_breaks_the_program_is_still_caught():
    import numpy as np
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil.passes.graph_pass import AbstractGraphPass
    from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipeline
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY

    from snapfusion_coreml.coreml.passes import apply_pipeline

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))])
    def prog(x):
        return mb.add(x=x, y=np.ones((2, 3), dtype=np.float32))

    class DropFirstOp(AbstractGraphPass):
        """Removes the add op's const input from the block while the add still reads it."""

        def apply(self, program):
            block = program.functions["main"]
            const = next(op for op in block.operations if op.op_type == "const")
            block.operations.remove(const)

    name = "test::drop_first_op"
    PASS_REGISTRY.passes[name] = DropFirstOp()
    try:
        pipeline = PassPipeline(pass_names=[name], pipeline_name="broken")
        with pytest.raises(ValueError, match="not visible in the block"):
            apply_pipeline(prog, pipeline)
    finally:
        del PASS_REGISTRY.passes[name]


@pytest.mark.slow
def test_convert_releases_the_module_before_the_passes(tiny_pipeline):
    import coremltools as ct

    from snapfusion_coreml.convert.recipe import to_coreml

    spec = component_specs(tiny_pipeline, 8, ("decoder",))[0]
    assert isinstance(spec.module, torch.nn.Module)
    to_coreml(spec, "iOS16", ct.PassPipeline.DEFAULT, consume=True)
    assert spec.module is None


@pytest.mark.parametrize("value", [
    np.float32(3.0), np.float32(70000.0), np.array([1.0, -70000.0], np.float32), np.array([np.inf, -np.inf, 2.0], np.float32),
    np.array([np.nan, 65504.0], np.float32), np.full((3, 2, 1, 1), 65505.0, np.float32), np.array([-65504.0, 1e38], np.float32),
    np.linspace(-7e4, 7e4, 3_000_003, dtype=np.float32).reshape(3, 1_000_001),
])
def test_fp16_overflow_test_agrees_with_coremltools(value):
    """The chunked test gives coremltools' answer (its own code, on a const op holding `value`)."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil.passes.defs.quantization import FP16ComputePrecision

    from snapfusion_coreml.coreml.passes import fp16_overflow

    shape = np.shape(value) or (1,)

    @mb.program(input_specs=[mb.TensorSpec(shape=shape)])
    def prog(x):
        return mb.add(x=x, y=value)

    op = next(op for op in prog.functions["main"].operations if op.op_type == "add")
    assert fp16_overflow(op) == FP16ComputePrecision.fp16_overflow(op)
