"""coremltools' pass pipelines with one program validation per pipeline instead of one per pass.

coremltools 9.0's PassPipelineManager.apply_pipeline validates the whole program before the
pipeline and again after each of its ~95 passes. Validation walks every op and every variable, so
for a UNet of a few thousand ops it takes about a third of the conversion's CPU time
(benchmarks/results/convert_memory.md). No pass relies on the validation of the pass before it:
a pass that produced an invalid program is still caught, by the validation after the last pass
of the pipeline, and the program written is the same op for op (tests/convert/test_passes.py).

    with validated_once_per_pipeline():
        mlmodel = ct.convert(...)
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


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


@contextmanager
def validated_once_per_pipeline() -> Iterator[None]:
    """Within the block, every coremltools pass pipeline runs through apply_pipeline above."""
    from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipelineManager

    original = PassPipelineManager.__dict__["apply_pipeline"]
    PassPipelineManager.apply_pipeline = staticmethod(apply_pipeline)
    try:
        yield
    finally:
        PassPipelineManager.apply_pipeline = original
