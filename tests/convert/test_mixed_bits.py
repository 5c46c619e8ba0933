"""Mixed-bit palettization: the recipe, its noise model against real palettized runs, names."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_runner import run_cli
from snapfusion_coreml.convert.components import component_specs, numpy_inputs
from snapfusion_coreml.convert.compress import palettize
from snapfusion_coreml.coreml.package import load_mil
from snapfusion_coreml.coreml.weights import palettizable_weights
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.interpreter.execute import run_program
from snapfusion_coreml.interpreter.program import load_program
from snapfusion_coreml.metrics import compare
from snapfusion_coreml.mixed_bits import _check_same_weights, analyse_sensitivity, analysis_spec, choose_bits, quantise

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.xdist_group("test_mixed_bits")]  # module fixtures: one worker builds them once


def _unet(pipeline, batch: int):
    """(spec, fp16 MLModel) of the pipeline's UNet converted at UNet batch `batch`."""
    from snapfusion_coreml.convert.recipe import to_coreml

    spec = component_specs(pipeline, 8, ("unet",), batch)[0]
    return spec, to_coreml(spec, "iOS16")


@pytest.fixture(scope="module")
def small_pipeline():
    """A tiny pipeline with the micro UNet layout and plain attention: quick to convert and to analyse
    (one palettized run per weight)."""
    from micro_layout import micro_layout

    from snapfusion_coreml.modeling.factory import build_tiny_pipeline

    return build_tiny_pipeline(micro_layout(), prediction_type="v_prediction", attention="original")


@pytest.fixture(scope="module")
def analysed(small_pipeline):
    """The UNet converted at batch 2 (so the analysis re-converts a batch-1 copy) and its analysis."""
    spec, mlmodel = _unet(small_pipeline, batch=2)
    return spec, mlmodel, analyse_sensitivity(mlmodel, spec, "kmeans", False)


def _measured_psnr(mlmodel, spec, bits, tmp_path: Path) -> tuple[float, Path]:
    """Palettize by the recipe, run the package in fp16 mode, PSNR against PyTorch."""
    path = tmp_path / f"mixed_{len(list(tmp_path.iterdir()))}.mlpackage"
    palettize(mlmodel, 0, "kmeans", False, per_op_bits=bits).save(str(path))
    inputs = numpy_inputs(spec)
    with torch.no_grad():
        reference = spec.module(*(torch.from_numpy(v) for v in inputs.values())).numpy()
    out = run_program(load_program(path), inputs, "fp16")["noise_pred"]
    return compare(reference, out).psnr_db, path


def _lut_bits(path: Path) -> dict[str, int]:
    """Palettized weight name -> bits, read back from the saved package."""
    found = {}
    for op in load_mil(path).functions["main"].operations:
        if op.op_type == "constexpr_lut_to_dense":
            name = op.outputs[0].name.removesuffix("_palettized")  # coremltools' suffix
            found[name] = int(np.log2(op.inputs["lut"].val.shape[-1]))
    return found


@pytest.mark.slow
def test_recipe_meets_the_target_with_allowed_bits_keyed_by_op_name(analysed):
    spec, mlmodel, sensitivity = analysed
    names = set(palettizable_weights(mlmodel))
    program_ops = {op.name for op in mlmodel._mil_program.functions["main"].operations}
    assert sensitivity.analysis_inputs["sample"] == [1, 4, 8, 8]  # the reduced batch-1 copy ran
    assert len(names) > 20 and names <= program_ops
    for target in (2.5, 3.0, 4.5, 6.0):
        recipe = choose_bits(sensitivity, target)
        assert set(recipe.bits) == names and set(recipe.bits.values()) <= {2, 4, 6, 8}
        assert target - 0.5 <= recipe.average_bits <= target + 1e-9
        sizes = palettizable_weights(mlmodel)
        weighted = sum(sizes[n].size * b for n, b in recipe.bits.items()) / sum(v.size for v in sizes.values())
        assert weighted == pytest.approx(recipe.average_bits)
    assert set(choose_bits(sensitivity, 8.0).bits.values()) == {8}
    assert set(choose_bits(sensitivity, 2.0).bits.values()) == {2}


@pytest.mark.slow
def test_noise_model_predicts_real_palettized_runs(analysed, tmp_path):
    spec, mlmodel, sensitivity = analysed
    measured = {}
    for target in (2.5, 4.0):
        recipe = choose_bits(sensitivity, target)
        measured[target], path = _measured_psnr(mlmodel, spec, recipe.bits, tmp_path)
        # predicted from batch-1 runs of the reduced copy, measured at the converted batch-2 shape
        # on other inputs: agreement within a few dB is what the model promises
        assert abs(measured[target] - recipe.predicted_psnr) < 4.0, (target, measured[target], recipe.predicted_psnr)
        lut_bits = _lut_bits(path)
        assert lut_bits == recipe.bits
    assert measured[4.0] > measured[2.5] + 3.0
    # the same budget spread uniformly is worse than the recipe
    uniform, _ = _measured_psnr(mlmodel, spec, {n: 2 for n in choose_bits(sensitivity, 2.5).bits}, tmp_path)
    assert measured[2.5] > uniform + 1.0


@pytest.mark.slow
def test_recipe_survives_a_fine_tuned_copy(analysed, small_pipeline, tmp_path):
    _, _, sensitivity = analysed
    recipe = choose_bits(sensitivity, 4.0)
    tuned = copy.copy(small_pipeline)
    tuned.unet = copy.deepcopy(small_pipeline.unet)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in tuned.unet.parameters():
            p.add_(0.2 * p.abs().mean() * torch.randn(p.shape, generator=generator))
    spec, mlmodel = _unet(tuned, batch=1)  # batch 1: analysed as converted, no reduced copy
    assert analysis_spec(spec) is None
    # the original recipe applies by name to the fine-tuned weights...
    path = tmp_path / "tuned.mlpackage"
    palettize(mlmodel, 0, "kmeans", False, per_op_bits=recipe.bits).save(str(path))
    assert _lut_bits(path) == recipe.bits
    # ...and a fresh analysis of the new weights covers the same names with new sensitivities
    fresh = analyse_sensitivity(mlmodel, spec, "kmeans", False)
    assert [layer.name for layer in fresh.layers] == [layer.name for layer in sensitivity.layers]
    assert [layer.sensitivity for layer in fresh.layers] != [layer.sensitivity for layer in sensitivity.layers]


def test_reduced_copy_must_name_weights_alike():
    full = {"conv_a_weight": np.zeros((8, 8)), "conv_b_weight": np.zeros((8, 8))}
    with pytest.raises(UserError, match=r"expected the reduced-shape analysis copy to name its 2 weights .* "
                                        r"got 2 differing \(first: conv_b_weight\) \(in Unet.mlpackage\)"):
        _check_same_weights(full, {"conv_a_weight": full["conv_a_weight"], "conv_c_weight": np.zeros((8, 8))},
                            "Unet.mlpackage")
    _check_same_weights(full, dict(full), "Unet.mlpackage")


def test_quantiser_palette_sizes():
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((32, 64)) * 0.05).astype(np.float16)
    for method in ("kmeans", "uniform"):
        errors = []
        for bits in (2, 4, 6, 8):
            q = quantise(w, bits, method, grouped=False)
            assert q.shape == w.shape and q.dtype == w.dtype and len(np.unique(q)) <= 2**bits
            errors.append(float(np.mean((q.astype(np.float64) - w) ** 2)))
        assert errors == sorted(errors, reverse=True) and errors[0] > 50 * errors[2]
        grouped = quantise(w, 2, method, grouped=True)  # one palette per 16 output channels
        assert all(len(np.unique(grouped[i:i + 16])) <= 4 for i in range(0, 32, 16))
        assert len(np.unique(grouped)) > 4


@pytest.mark.slow
def test_convert_mixed_end_to_end_then_inspect_and_verify(micro_model_dir, tmp_path, capsys):
    from snapfusion_coreml.verify.check import verify_folder

    out = tmp_path / "mixed"
    code, _, err = run_cli(["convert", str(micro_model_dir), "-o", str(out), "--components", "unet", "--unet-batch", "1",
                            "--palettize", "mixed:4", "--chunk-unet", "--attention", "original"], capsys)
    assert code == 0, err
    compression = json.loads((out / "pipeline.json").read_text())["components"]["unet"]["compression"]
    assert compression["recipe"] == "mixed" and compression["target_bits"] == 4.0
    assert 3.5 <= compression["bits"] <= 4.0 and set(compression["layers"].values()) <= {2, 4, 6, 8}

    code, text, _ = run_cli(["inspect", str(out)], capsys)
    assert code == 0 and "unet: mixed-bit recipe" in text and f"{len(compression['layers'])} layers" in text
    code, text, _ = run_cli(["inspect", str(out), "--json"], capsys)
    histogram = json.loads(text)["pipeline"]["components"]["unet"]["mixed_bits_histogram"]
    assert sum(histogram.values()) == len(compression["layers"])

    report = verify_folder(out)  # chunked, batch 1, palettized: still above 35 dB
    assert report.ok and [c.packages for c in report.checks][0] == ("UnetChunk1.mlpackage", "UnetChunk2.mlpackage")
