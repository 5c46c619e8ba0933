"""Weight compression of converted programs: palettization (one bit width or a mixed recipe).

Apple's conventions: palettize the text encoder and the UNet, keep the decoder fp16, never
palettize the token embedding (a gather, whose rows are read one at a time), and palettize before
chunking. Per-grouped-channel look-up tables (one LUT per GROUP_SIZE output channels) need the
iOS 18 opset; older targets get one LUT per tensor.
"""

from __future__ import annotations

from typing import Any, Callable

from ..coreml.weights import GROUP_SIZE, WEIGHT_OPS, palettizable_weights
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
    if method == "kmeans":
        return OpPalettizerConfig(mode="custom", lut_function=kmeans_lut_function(bits), granularity=granularity,
                                  group_size=GROUP_SIZE)
    return OpPalettizerConfig(mode=method, nbits=bits, granularity=granularity, group_size=GROUP_SIZE)


def _shared_constants(mlmodel) -> list[str]:
    """Constants feeding a weight op and some other op too: they stay fp16. coremltools merges
    equal constants (e.g. two all-zero biases), and a constant with two configs is an error."""
    shared = []
    for op in mlmodel._mil_program.functions["main"].operations:
        if op.op_type == "const":
            kinds = {c.op_type in WEIGHT_OPS for c in op.outputs[0].child_ops}
            if kinds == {True, False}:
                shared.append(op.name)
    return shared


def palettize(mlmodel, bits: int, method: str, grouped: bool, per_op_bits: dict[str, int] | None = None):
    """Palettize every palettizable weight at `bits`, or per const-op name from per_op_bits.

    Weights are selected by name (palettizable_weights), so nothing else (the token embedding,
    masks, norms, shared constants) is ever touched.
    """
    from coremltools.optimize.coreml import OptimizationConfig, palettize_weights

    if per_op_bits is None:
        per_op_bits = {name: bits for name in palettizable_weights(mlmodel)}
    configs = {name: None for name in _shared_constants(mlmodel)}
    configs.update({name: palettizer_config(b, method, grouped) for name, b in per_op_bits.items()})
    return palettize_weights(mlmodel, OptimizationConfig(op_name_configs=configs))


def compress_model(mlmodel, spec: ComponentSpec, options: ConvertOptions, mixed_recipe: MixedRecipe | None = None):
    """(compressed model, summary for pipeline.json). mixed_recipe computes `mixed:BITS` recipes."""
    compression = options.compression_for(spec.key, spec.compress)
    if not compression.enabled:
        return mlmodel, {"mode": "none"}
    grouped = options.grouped_channel_luts
    granularity = "per_grouped_channel" if grouped else "per_tensor"
    if compression.mode == "mixed":
        if mixed_recipe is None:
            raise ValueError(NO_MIXED_RECIPE)
        recipe = mixed_recipe(mlmodel, spec, compression.bits, compression.method, grouped)
        model = palettize(mlmodel, 0, compression.method, grouped, per_op_bits=recipe.bits)
        return model, {"mode": "palettize", "recipe": "mixed", "bits": round(recipe.average_bits, 3),
                       "target_bits": compression.bits, "method": compression.method, "granularity": granularity,
                       "layers": recipe.bits, "predicted_psnr_db": recipe.predicted_psnr}
    bits = int(compression.bits)
    model = palettize(mlmodel, bits, compression.method, grouped)
    return model, {"mode": "palettize", "bits": bits, "method": compression.method, "granularity": granularity}
