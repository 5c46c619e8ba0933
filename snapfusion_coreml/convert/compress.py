"""Weight compression of converted programs: palettization (one bit width or a mixed recipe).

Apple's conventions: palettize the text encoder and the UNet, keep the decoder fp16, never
palettize the token embedding (a gather, whose rows are read one at a time), and palettize before
chunking. Per-grouped-channel look-up tables (one LUT per GROUP_SIZE output channels) need the
iOS 18 opset; older targets get one LUT per tensor.
"""

from __future__ import annotations

from .components import ComponentSpec
from .kmeans import kmeans_lut_function
from .options import ConvertOptions

GROUP_SIZE = 16
# Only weights feeding these ops are palettized: the token embedding (gather), attention masks
# and other constants stay as they are.
WEIGHT_OPS = ("conv", "linear", "matmul")


def palettizer_config(bits: int, method: str, grouped: bool):
    """kmeans runs our exact 1-D k-means (kmeans.py) as a custom LUT function; uniform is
    coremltools' own (evenly spaced palette between min and max)."""
    from coremltools.optimize.coreml import OpPalettizerConfig

    granularity = "per_grouped_channel" if grouped else "per_tensor"
    if method == "kmeans":
        return OpPalettizerConfig(mode="custom", lut_function=kmeans_lut_function(bits), granularity=granularity,
                                  group_size=GROUP_SIZE)
    return OpPalettizerConfig(mode=method, nbits=bits, granularity=granularity, group_size=GROUP_SIZE)


def palettize(mlmodel, bits: int, method: str, grouped: bool, per_op_bits: dict[str, int] | None = None):
    """Palettize every weight (except gather's) at `bits`, or per const-op name from per_op_bits."""
    from coremltools.optimize.coreml import OptimizationConfig, palettize_weights

    if per_op_bits is None:
        config = OptimizationConfig(op_type_configs={t: palettizer_config(bits, method, grouped) for t in WEIGHT_OPS})
    else:
        config = OptimizationConfig(
            op_name_configs={name: palettizer_config(b, method, grouped) for name, b in per_op_bits.items()})
    return palettize_weights(mlmodel, config)


def compress_model(mlmodel, spec: ComponentSpec, options: ConvertOptions):
    """(compressed model, summary for pipeline.json)."""
    compression = options.compression
    if not compression.enabled or not spec.compress:
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
    bits = int(compression.bits)
    model = palettize(mlmodel, bits, compression.method, grouped)
    return model, {"mode": "palettize", "bits": bits, "method": compression.method, "granularity": granularity}
