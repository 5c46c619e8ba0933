"""Mixed-bit palettization: bits per weight from a per-layer sensitivity analysis.

Layers are keyed by the NAME of their weight constant in the Core ML program (the name comes
from the traced module path, e.g. `unet_down_blocks_1_attentions_0_..._to_q_weight_to_fp16`),
never by a hash of the weight values: a recipe therefore applies to a fine-tuned or distilled
copy of the same architecture, and the analysis itself measures whatever weights are there.

Noise model. Palettizing weight i at b bits adds to the output an error of power
    N_i(b) = S_i * q_i(b)
  q_i(b)  the mean squared error of the weight itself at b bits, computed exactly with the
          quantiser `convert` uses (kmeans_1d or uniform; per tensor or per 16-channel group);
  S_i     the layer's sensitivity: output noise power per unit of weight MSE, measured once by
          palettizing that weight alone at MEASURE_BITS and running the program in the interpreter.
Errors of different layers are taken as independent, so their powers add; the unpalettized
program's own error against the PyTorch module (fp16 weights, fp16 math) E_16 is measured once
and added as a floor, so the prediction is of what `verify` reports. With the output peak P (max |ref|,
as `metrics.psnr` uses) the predicted PSNR is 10 log10(P^2 / (E_16 + sum_i N_i(b_i))). Noise
powers are peak-normalised and averaged over the outputs of multi-output programs.

Allocation. Every layer starts at 8 bits; the layer whose next step down (8 -> 6 -> 4 -> 2) adds
the least noise per bit saved (dN / (parameters * dbits)) steps down, until the parameter-weighted
average is at most the target. Since q_i falls about 4x per extra bit, each layer's noise curve
is convex and this greedy order is the usual near-optimal one for a bit budget.

Cost. The analysis runs the program once per palettizable weight. A full-size UNet takes 6-17 s
per interpreter run at its converted 64x64 batch-2 shape, so the UNet is analysed on a copy
re-converted from the same module at batch 1 and a latent side of at most ANALYSIS_LATENT; its
weight constants must carry the same names (checked, with a clear error otherwise). Measured
(benchmarks/results/verify_full_size.json): the 240 weights of the full-size SnapFusion UNet in
218 s on 2 shared cores, re-conversion at 16x16 included; predictions within ~2.5 dB of the
palettized packages' measured PSNR (conservative: the model over-estimates the noise).

Place in the package: the analysis converts (convert/) and runs programs in the Linux interpreter
(interpreter/), so it sits above both; `convert` receives `mixed_bit_recipe` as a function
(convert/compress.py, MixedRecipe) and never imports this module.
"""

from __future__ import annotations

import dataclasses
import heapq
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .convert.components import ComponentSpec, TensorSpec, numpy_inputs
from .convert.kmeans import kmeans_1d
from .convert.recipe import to_coreml
from .convert_spec import MIXED_BITS_CHOICES
from .coreml.tools import SPEC_VERSION_TARGETS
from .coreml.weights import GROUP_SIZE, palettizable_weights
from .errors import UserError
from .interpreter.execute import run_program
from .interpreter.program import load_program

MEASURE_BITS = 4  # each layer's sensitivity is measured once, palettized alone at this width
ANALYSIS_LATENT = 16  # latent side of the reduced-shape UNet copy the analysis runs
ANALYSIS_TIMESTEP = 499.0  # the middle of the training schedule


@dataclass(frozen=True)
class LayerSensitivity:
    name: str  # const op name in the program
    size: int  # parameters
    weight_mse: dict[int, float]  # bits -> mean squared quantisation error of the weight
    sensitivity: float  # peak-normalised output noise power per unit of weight MSE

    def noise(self, bits: int) -> float:
        return self.sensitivity * self.weight_mse[bits]


@dataclass(frozen=True)
class Sensitivity:
    """The expensive part of a recipe: measured once, then `choose_bits` for any target."""

    layers: tuple[LayerSensitivity, ...]
    floor_noise: float  # peak-normalised noise of the unpalettized fp16 program against PyTorch
    method: str
    grouped: bool
    analysis_inputs: dict[str, list[int]]  # input name -> shape the analysis ran at
    seconds: float


@dataclass(frozen=True)
class Recipe:
    bits: dict[str, int]  # const op name -> bits
    average_bits: float  # parameter-weighted; 16.0 when no weight qualifies
    predicted_psnr: float  # dB, of the palettized fp16 program against the PyTorch module
    target_bits: float


# --- which weights, and what palettizing them does to the weight ----------------------------


def quantise(values: np.ndarray, bits: int, method: str, grouped: bool) -> np.ndarray:
    """`values` palettized to 2**bits entries and decoded again (same dtype and shape).

    kmeans: kmeans_1d (what convert's custom LUT function runs); uniform: coremltools' evenly
    spaced palette from min to max. grouped: one palette per GROUP_SIZE output channels (axis 0).
    """
    groups = [values[i:i + GROUP_SIZE] for i in range(0, len(values), GROUP_SIZE)] if grouped else [values]
    out = []
    for group in groups:
        if method == "kmeans":
            lut, idx = kmeans_1d(group, bits)
        else:
            lo, hi = float(group.min()), float(group.max())
            levels = (1 << bits) - 1
            idx = np.round((group.reshape(-1).astype(np.float64) - lo) / ((hi - lo) or 1.0) * levels).astype(np.int64)
            lut = (np.arange(levels + 1) * ((hi - lo) / levels) + lo).astype(group.dtype)
        out.append(lut[idx].reshape(group.shape))
    return np.concatenate(out) if grouped else out[0]


def weight_mse(values: np.ndarray, dequantised: np.ndarray) -> float:
    return float(np.mean((dequantised.astype(np.float64) - values.astype(np.float64)) ** 2))


# --- the analysis ---------------------------------------------------------------------------


def analysis_spec(spec: ComponentSpec) -> ComponentSpec | None:
    """The reduced-shape copy the UNet is analysed at: batch 1, timestep ANALYSIS_TIMESTEP, latent
    side <= ANALYSIS_LATENT (a multiple of the UNet's divisor). None when the converted shape is
    already that small, or for other components (the text encoder's ids are (1, 77) anyway)."""
    if spec.key != "unet":
        return None
    sample = next(t for t in spec.inputs if t.name == "sample")
    batch, channels, side = sample.shape[0], sample.shape[1], sample.shape[2]
    divisor = spec.module.unet.layout.latent_divisor
    small = max(divisor, min(side, ANALYSIS_LATENT) // divisor * divisor)
    if batch == 1 and small == side and sample.shape[3] == side:
        return None
    shapes = {"sample": (1, channels, small, small), "timestep": (1,)}
    inputs = tuple(TensorSpec(t.name, shapes.get(t.name, (1,) + tuple(t.shape[1:])), t.dtype) for t in spec.inputs)
    return dataclasses.replace(spec, inputs=inputs)


def _analysis_inputs(spec: ComponentSpec) -> dict[str, np.ndarray]:
    inputs = numpy_inputs(spec)
    if "timestep" in inputs and inputs["timestep"].shape == (1,):
        inputs["timestep"] = np.array([ANALYSIS_TIMESTEP], dtype=np.float32)
    return inputs


def _normalised_noise(reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> float:
    """Mean over outputs of mse / peak^2 (the quantity metrics.psnr turns into dB)."""
    total = 0.0
    for name, ref in reference.items():
        ref64 = ref.astype(np.float64)
        peak = float(np.max(np.abs(ref64))) or 1.0
        total += float(np.mean((candidate[name].astype(np.float64) - ref64) ** 2)) / peak**2
    return total / len(reference)


def _torch_outputs(spec: ComponentSpec, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import torch

    with torch.no_grad():
        out = spec.module(*(torch.from_numpy(v) for v in inputs.values()))
    out = out if isinstance(out, tuple) else (out,)
    return {name: o.numpy() for name, o in zip(spec.outputs, out)}


def _to_db(noise: float) -> float:
    return float("inf") if noise <= 0 else float(-10.0 * np.log10(noise))


def analyse_sensitivity(mlmodel, spec: ComponentSpec, method: str, grouped: bool,
                        on_progress: Callable[[int, int], None] | None = None) -> Sensitivity:
    """Measure every palettizable weight of `mlmodel` (the converted fp16 program of `spec`).

    on_progress(done, total) is called after each layer.
    """
    import torch

    start = time.perf_counter()
    # 1. the weights the recipe will cover, by const op name
    layers = palettizable_weights(mlmodel)
    # 2. the program the analysis runs: a reduced-shape copy whose weights carry the same names
    small = analysis_spec(spec)
    analysed, run_spec = mlmodel, spec
    if small is not None:
        target = SPEC_VERSION_TARGETS.get(mlmodel.get_spec().specificationVersion, "iOS16")
        analysed, run_spec = to_coreml(small, target), small
        _check_same_weights(layers, palettizable_weights(analysed), spec.file)
    inputs = _analysis_inputs(run_spec)
    with tempfile.TemporaryDirectory() as tmp:
        analysed.save(str(Path(tmp) / spec.file))
        program = load_program(Path(tmp) / spec.file)
        var_of = {op.name: op.outputs[0].name for op in analysed._mil_program.functions["main"].operations
                  if op.name in layers}
        del analysed
        # 3. reference runs: the program's fp32 math, and its floor (fp16 weights and fp16 math)
        #    against the PyTorch module, which is what `verify` compares with
        reference = run_program(program, inputs, "fp32")
        floor_noise = _normalised_noise(_torch_outputs(run_spec, inputs), run_program(program, inputs, "fp16"))
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(_faster_thread_count(lambda: run_program(program, inputs, "fp32"), threads))
            # 4. one run per layer, that layer alone palettized at MEASURE_BITS (2 if 4 is exact)
            result = []
            for i, (name, values) in enumerate(layers.items()):
                decoded = {b: quantise(values, b, method, grouped) for b in MIXED_BITS_CHOICES}
                mse = {b: weight_mse(values, d) for b, d in decoded.items()}
                measure = MEASURE_BITS if mse[MEASURE_BITS] > 0 else MIXED_BITS_CHOICES[0]
                sensitivity = 0.0
                if mse[measure] > 0:
                    perturbed = torch.from_numpy(decoded[measure].astype(np.float32))
                    out = run_program(program, inputs, "fp32", weights_override={var_of[name]: perturbed})
                    sensitivity = _normalised_noise(reference, out) / mse[measure]
                del decoded
                result.append(LayerSensitivity(name, int(values.size), mse, sensitivity))
                if on_progress:
                    on_progress(i + 1, len(layers))
        finally:
            torch.set_num_threads(threads)
    shapes = {k: list(v.shape) for k, v in inputs.items()}
    return Sensitivity(tuple(result), floor_noise, method, grouped, shapes, time.perf_counter() - start)


def _faster_thread_count(run: Callable[[], object], threads: int) -> int:
    """1 or `threads`, whichever runs `run` faster: small reduced-shape programs are dominated by
    per-op overhead, where a second thread (worse still on a busy machine) only adds waiting."""
    import torch

    if threads <= 1:
        return threads
    timings = {}
    for count in (threads, 1):
        torch.set_num_threads(count)
        start = time.perf_counter()
        run()
        timings[count] = time.perf_counter() - start
    return min(timings, key=timings.get)


def _check_same_weights(full: dict[str, np.ndarray], small: dict[str, np.ndarray], where: str) -> None:
    differ = sorted(set(full) ^ set(small)) or sorted(n for n in full if full[n].shape != small[n].shape)
    if differ:
        raise UserError(
            f"expected the reduced-shape analysis copy to name its {len(full)} weights as the converted "
            f"program does, got {len(differ)} differing (first: {differ[0]}) (in {where})")


# --- the allocation ------------------------------------------------------------------------------


def choose_bits(sensitivity: Sensitivity, target_bits: float) -> Recipe:
    """Bits per layer from MIXED_BITS_CHOICES with a parameter-weighted average <= target_bits
    (or all at the lowest width) and the least predicted output noise (greedy, see module doc)."""
    layers = sensitivity.layers
    if not layers:
        return Recipe({}, 16.0, _to_db(sensitivity.floor_noise), float(target_bits))
    choices = sorted(MIXED_BITS_CHOICES, reverse=True)  # 8, 6, 4, 2
    level = {layer.name: 0 for layer in layers}
    total = sum(layer.size for layer in layers)
    bit_sum = sum(layer.size * choices[0] for layer in layers)

    def step_cost(layer: LayerSensitivity, at: int) -> float:
        saved = layer.size * (choices[at] - choices[at + 1])
        return (layer.noise(choices[at + 1]) - layer.noise(choices[at])) / saved

    heap = [(step_cost(layer, 0), layer.name, i) for i, layer in enumerate(layers)]
    heapq.heapify(heap)
    while heap and bit_sum / total > target_bits + 1e-9:
        _, name, i = heapq.heappop(heap)
        layer = layers[i]
        at = level[name]
        bit_sum -= layer.size * (choices[at] - choices[at + 1])
        level[name] = at + 1
        if at + 2 < len(choices):
            heapq.heappush(heap, (step_cost(layer, at + 1), name, i))
    bits = {layer.name: choices[level[layer.name]] for layer in layers}
    noise = sensitivity.floor_noise + sum(layer.noise(bits[layer.name]) for layer in layers)
    return Recipe(bits, bit_sum / total, _to_db(noise), float(target_bits))


def mixed_bit_recipe(mlmodel, spec: ComponentSpec, target_bits: float, method: str, grouped: bool,
                     on_progress: Callable[[int, int], None] | None = None) -> Recipe:
    """The recipe convert/compress.py applies (its MixedRecipe): analyse `mlmodel`'s weights, then
    allocate target_bits."""
    return choose_bits(analyse_sensitivity(mlmodel, spec, method, grouped, on_progress), target_bits)
