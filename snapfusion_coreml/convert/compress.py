"""Weight compression of converted programs: palettization (one bit width or a mixed recipe).

Apple's conventions: palettize the text encoder and the UNet, keep the decoder fp16, never
palettize the token embedding (a gather, whose rows are read one at a time), and palettize before
chunking. Per-grouped-channel look-up tables (one LUT per GROUP_SIZE output channels) need the
iOS 18 opset; older targets get one LUT per tensor.
"""

from __future__ import annotations

import numpy as np

from .components import ComponentSpec
from .kmeans import kmeans_lut_function
from .options import ConvertOptions

GROUP_SIZE = 16
# Only weights feeding these ops are palettized: the token embedding (gather), attention masks
# and other constants stay as they are.
WEIGHT_OPS = ("conv", "linear", "matmul")
MIN_WEIGHT_SIZE = 2048  # coremltools' default weight_threshold: smaller weights stay fp16


def palettizer_config(bits: int, method: str, grouped: bool):
    """kmeans runs our exact 1-D k-means (kmeans.py) as a custom LUT function; uniform is
    coremltools' own (evenly spaced palette between min and max)."""
    from coremltools.optimize.coreml import OpPalettizerConfig

    granularity = "per_grouped_channel" if grouped else "per_tensor"
    if method == "kmeans":
        return OpPalettizerConfig(mode="custom", lut_function=kmeans_lut_function(bits), granularity=granularity,
                                  group_size=GROUP_SIZE)
    return OpPalettizerConfig(mode=method, nbits=bits, granularity=granularity, group_size=GROUP_SIZE)


def palettizable_weights(mlmodel) -> dict[str, np.ndarray]:
    """const op name -> value of every weight that is palettized: fed only to conv, linear or
    matmul, rank >= 2, more than MIN_WEIGHT_SIZE elements; in program order."""
    return palettizable_consts(mlmodel._mil_program.functions["main"])


def palettizable_consts(function) -> dict[str, np.ndarray]:
    """palettizable_weights of one MIL function (a converted program's or one inside a pass)."""
    found = {}
    for op in function.operations:
        val = op.outputs[0].val if op.op_type == "const" else None
        children = op.outputs[0].child_ops if op.op_type == "const" else ()
        if (isinstance(val, np.ndarray) and val.dtype.kind == "f" and val.ndim >= 2 and val.size > MIN_WEIGHT_SIZE
                and children and all(c.op_type in WEIGHT_OPS for c in children)):
            found[op.name] = val
    return found


def _shared_constants(function) -> list[str]:
    """Constants feeding a weight op and some other op too: they stay fp16. coremltools merges
    equal constants (e.g. two all-zero biases), and a constant with two configs is an error."""
    shared = []
    for op in function.operations:
        if op.op_type == "const":
            kinds = {c.op_type in WEIGHT_OPS for c in op.outputs[0].child_ops}
            if kinds == {True, False}:
                shared.append(op.name)
    return shared


def palettize_config(function, bits: int, method: str, grouped: bool, per_op_bits: dict[str, int] | None = None):
    """The OptimizationConfig palettizing `function`'s palettizable weights at `bits` (or per
    const-op name from per_op_bits) and nothing else (token embedding, masks, shared constants)."""
    from coremltools.optimize.coreml import OptimizationConfig

    if per_op_bits is None:
        per_op_bits = {name: bits for name in palettizable_consts(function)}
    configs = {name: None for name in _shared_constants(function)}
    configs.update({name: palettizer_config(b, method, grouped) for name, b in per_op_bits.items()})
    return OptimizationConfig(op_name_configs=configs)


def palettize(mlmodel, bits: int, method: str, grouped: bool, per_op_bits: dict[str, int] | None = None):
    """Palettize a converted model's palettizable weights at `bits`, or per const-op name from
    per_op_bits. This re-runs coremltools' whole pass pipeline; convert_pipeline palettizes
    one-bit-width components inside the conversion instead (palettize_in_pipeline)."""
    from coremltools.optimize.coreml import palettize_weights

    config = palettize_config(mlmodel._mil_program.functions["main"], bits, method, grouped, per_op_bits)
    return palettize_weights(mlmodel, config)


def palettize_in_pipeline(pipeline, bits: int, method: str, grouped: bool):
    """Append PALETTIZE_PASS with these settings to a coremltools PassPipeline (ct.convert's
    main pipeline): the weights are palettized once, on the optimised program, without a second
    conversion. The same weights as `palettize` get the same palettes."""
    _register_palettize_pass()
    pipeline.append_pass(PALETTIZE_PASS)
    pipeline.set_options(PALETTIZE_PASS, {"bits": bits, "method": method, "grouped": grouped})
    return pipeline


PALETTIZE_PASS = "snapfusion::palettize_selected"


def _register_palettize_pass() -> None:
    from coremltools.converters.mil.mil.passes.graph_pass import AbstractGraphPass
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY, register_pass

    if PALETTIZE_PASS in PASS_REGISTRY:
        return

    @register_pass(namespace="snapfusion")
    class palettize_selected(AbstractGraphPass):
        """Palettize the weights palettizable_consts selects (options bits, method, grouped)."""

        bits, method, grouped = 6, "kmeans", False

        def apply(self, prog):
            from coremltools.optimize.coreml._quantization_passes import palettize_weights as palettize_pass

            config = palettize_config(prog.functions["main"], int(self.bits), self.method, bool(self.grouped))
            palettize_pass(config).apply(prog)


def conversion_pass_pipeline(spec: ComponentSpec, options: ConvertOptions):
    """ct.convert's main pass pipeline for this component: the default, plus palettization when
    the component gets one bit width (a mixed recipe needs the converted program first)."""
    import coremltools as ct

    pipeline = ct.PassPipeline.DEFAULT
    compression = options.compression_for(spec.key, spec.compress)
    if compression.mode == "palettize":
        palettize_in_pipeline(pipeline, int(compression.bits), compression.method, options.grouped_channel_luts)
    return pipeline


def compress_model(mlmodel, spec: ComponentSpec, options: ConvertOptions):
    """(compressed model, summary for pipeline.json) of a model converted with
    conversion_pass_pipeline: one bit width is already applied; a mixed recipe is computed and
    applied here."""
    compression = options.compression_for(spec.key, spec.compress)
    if not compression.enabled:
        return mlmodel, {"mode": "none"}
    grouped = options.grouped_channel_luts
    granularity = "per_grouped_channel" if grouped else "per_tensor"
    if compression.mode == "mixed":
        from .mixed_bits import mixed_bit_recipe

        recipe = mixed_bit_recipe(mlmodel, spec, compression.bits, compression.method, grouped)
        model = palettize(mlmodel, 0, compression.method, grouped, per_op_bits=recipe.bits)
        return model, {"mode": "palettize", "recipe": "mixed", "bits": round(recipe.average_bits, 3),
                       "target_bits": compression.bits, "method": compression.method, "granularity": granularity,
                       "layers": recipe.bits, "predicted_psnr_db": recipe.predicted_psnr}
    return mlmodel, {"mode": "palettize", "bits": int(compression.bits), "method": compression.method,
                     "granularity": granularity}
