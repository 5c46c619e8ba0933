"""Weight compression of converted programs: palettization (one bit width or a mixed recipe).

Apple's conventions: palettize the text encoder and the UNet, keep the decoder fp16, never
palettize the token embedding (a gather, whose rows are read one at a time), and palettize before
chunking. Per-grouped-channel look-up tables (one LUT per GROUP_SIZE output channels) need the
iOS 18 opset; older targets get one LUT per tensor.
"""

from __future__ import annotations

from typing import Any, Callable

from ..contracts.pipeline_json import Compression
from ..coreml.weights import GROUP_SIZE, MIN_WEIGHT_SIZE, WEIGHT_OPS, palettizable_consts
from .components import ComponentSpec
from .kmeans import kmeans_lut_function
from .options import ConvertOptions

# (fp16 model, spec, target average bits, method, grouped) -> a recipe with .bits (const op name ->
# bits), .average_bits and .predicted_psnr: mixed_bits.mixed_bit_recipe, which runs the programs
# in the Linux interpreter and so sits above both convert and verify.
MixedRecipe = Callable[[Any, ComponentSpec, float, str, bool], Any]
NO_MIXED_RECIPE = "--palettize mixed needs mixed_recipe=snapfusion_coreml.mixed_bits.mixed_bit_recipe"


def palettizer_config(bits: int, method: str, grouped: bool):
    """kmeans runs our exact 1-D k-means (kmeans.py) as a custom LUT function; uniform is
    coremltools' own (evenly spaced palette between min and max)."""
    from coremltools.optimize.coreml import OpPalettizerConfig

    granularity = "per_grouped_channel" if grouped else "per_tensor"
    common = dict(granularity=granularity, group_size=GROUP_SIZE, weight_threshold=MIN_WEIGHT_SIZE)
    if method == "kmeans":
        return OpPalettizerConfig(mode="custom", lut_function=kmeans_lut_function(bits), **common)
    return OpPalettizerConfig(mode=method, nbits=bits, **common)


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


def compress_model(mlmodel, spec: ComponentSpec, options: ConvertOptions,
                   mixed_recipe: MixedRecipe | None = None) -> tuple[Any, Compression]:
    """(compressed model, its pipeline.json compression record) of a model converted with
    conversion_pass_pipeline: one bit width is already applied; a `mixed:BITS` recipe is computed
    by mixed_recipe and applied here."""
    compression = options.compression_for(spec.key, spec.compress)
    if not compression.enabled:
        return mlmodel, Compression("none")
    grouped = options.grouped_channel_luts
    granularity = "per_grouped_channel" if grouped else "per_tensor"
    if compression.mode == "mixed":
        if mixed_recipe is None:
            raise ValueError(NO_MIXED_RECIPE)
        recipe = mixed_recipe(mlmodel, spec, compression.bits, compression.method, grouped)
        model = palettize(mlmodel, 0, compression.method, grouped, per_op_bits=recipe.bits)
        return model, Compression("palettize", round(recipe.average_bits, 3), compression.method, granularity,
                                  recipe="mixed", target_bits=compression.bits, layers=recipe.bits,
                                  predicted_psnr_db=recipe.predicted_psnr)
    return mlmodel, Compression("palettize", int(compression.bits), compression.method, granularity)
