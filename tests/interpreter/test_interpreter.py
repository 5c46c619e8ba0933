"""The interpreter on real converter output: tiny SD-like modules converted with coremltools,
run on Linux, compared with PyTorch through the project's PSNR helper."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from snapfusion_coreml.errors import UserError
from snapfusion_coreml.interpreter.execute import run_program, supported_ops
from snapfusion_coreml.interpreter.kernels import KERNELS
from snapfusion_coreml.interpreter.program import load_program
from snapfusion_coreml.metrics import MIN_PSNR_DB, PARITY_PSNR_DB, compare
from weight_blobs import rewrite_largest_fp16_blob

from .conftest import INPUTS

CONVERSIONS = [("text", "iOS16"), ("text", "iOS18"), ("unet", "iOS16"), ("decoder", "iOS16"), ("decoder", "iOS18")]


@pytest.mark.parametrize("kind, target", CONVERSIONS)
@pytest.mark.slow
def test_matches_pytorch_in_both_modes(packages, kind, target):
    path, reference = packages.get(kind, target)
    program = load_program(path)
    assert program.outputs == list(reference)
    assert set(program.op_counts()) <= supported_ops()
    fp32 = run_program(program, INPUTS[kind], mode="fp32")
    fp16 = run_program(program, INPUTS[kind], mode="fp16")
    for name, ref in reference.items():
        assert fp32[name].shape == ref.shape and fp32[name].dtype == np.float32
        # fp32 math on fp16-stored weights: only the weights' rounding separates it from torch
        assert compare(ref, fp32[name]).psnr_db >= PARITY_PSNR_DB, name
        # fp16 storage of every activation costs some dB but must stay above Apple's bar
        result = compare(ref, fp16[name])
        assert result.ok(MIN_PSNR_DB), (name, result)
        assert not np.array_equal(fp16[name], fp32[name]), "fp16 mode must round intermediates"


def test_program_describes_its_io(packages):
    path, _ = packages.get("unet")
    program = load_program(path)
    assert program.package == path
    assert program.inputs == {"sample": ((2, 4, 8, 8), "float32"), "timestep": ((2,), "float32"),
                              "encoder_hidden_states": ((2, 24, 1, 7), "float32")}
    assert program.outputs == ["noise_pred"]
    counts = program.op_counts()
    for op in ("einsum", "split", "conv", "reduce_mean", "upsample_nearest_neighbor", "sin", "cos", "gelu"):
        assert counts.get(op, 0) > 0, f"expected the converter to emit {op}"


# --- compressed weights ------------------------------------------------------------------------

COMPRESSION = [  # (target, method, options, least PSNR against PyTorch)
    ("iOS16", "palettize", dict(mode="kmeans", nbits=8), 35.0),
    ("iOS16", "palettize", dict(mode="kmeans", nbits=6), 25.0),
    ("iOS16", "palettize", dict(mode="kmeans", nbits=4), 15.0),
    ("iOS16", "palettize", dict(mode="uniform", nbits=8), 35.0),
    ("iOS16", "palettize", dict(mode="uniform", nbits=6), 25.0),
    ("iOS16", "palettize", dict(mode="uniform", nbits=4), 12.0),
    ("iOS18", "palettize", dict(mode="kmeans", nbits=4, granularity="per_grouped_channel", group_size=4), 15.0),
    ("iOS16", "quantize", dict(mode="linear_symmetric"), 35.0),
    ("iOS18", "quantize", dict(mode="linear", dtype="int4", granularity="per_block", block_size=8), 12.0),
    ("iOS16", "prune", dict(target_sparsity=0.25), 5.0),
    ("iOS18", "prune", dict(target_sparsity=0.25), 5.0),
]


@pytest.mark.parametrize("target, method, options, least_psnr", COMPRESSION,
                         ids=[f"{c[1]}-{c[0]}-" + "-".join(str(v) for v in c[2].values()) for c in COMPRESSION])
@pytest.mark.slow
def test_compressed_weights_decode_like_coremltools(packages, target, method, options, least_psnr):
    compressed, reference = packages.get("decoder", target, method, **options)
    expanded, _ = packages.get("decoder", target, method, decompressed=True, **options)
    plain, _ = packages.get("decoder", target)
    program = load_program(compressed)
    assert any(op.startswith("constexpr_") for op in program.op_counts())
    for mode in ("fp32", "fp16"):
        ours = run_program(program, INPUTS["decoder"], mode)["image"]
        theirs = run_program(load_program(expanded), INPUTS["decoder"], mode)["image"]
        # our decoders against coremltools' decompress_weights: the same fp16 weights
        assert compare(theirs, ours).psnr_db >= 90.0, mode
    uncompressed = run_program(load_program(plain), INPUTS["decoder"], "fp16")["image"]
    assert compare(uncompressed, ours).psnr_db < 90.0, "the compressed weights must actually be used"
    assert compare(reference["image"], ours).ok(least_psnr)


def test_weights_decode_once_per_program(packages):
    path, _ = packages.get("decoder", "iOS16", "palettize", mode="kmeans", nbits=8)
    program = load_program(path)
    first = run_program(program, INPUTS["decoder"])
    decoded = program.decoded_ops
    assert decoded > 0
    second = run_program(program, INPUTS["decoder"], mode="fp16")
    third = run_program(program, INPUTS["decoder"])
    assert program.decoded_ops == decoded
    assert np.array_equal(first["image"], third["image"])
    assert not np.array_equal(first["image"], second["image"])


# --- the interpreter must notice what is wrong ---------------------------------------------------


def _flip_largest_fp16_blob(weight_bin) -> None:
    """Negate every value of the largest fp16 blob (flip the sign bit)."""
    rewrite_largest_fp16_blob(weight_bin, lambda values: values ^ 0x8000)


def test_altered_weight_file_changes_the_result(packages, tmp_path):
    path, reference = packages.get("decoder")
    altered = tmp_path / "altered.mlpackage"
    shutil.copytree(path, altered)
    _flip_largest_fp16_blob(altered / "Data" / "com.apple.CoreML" / "weights" / "weight.bin")
    good = run_program(load_program(path), INPUTS["decoder"])["image"]
    bad = run_program(load_program(altered), INPUTS["decoder"])["image"]
    assert compare(reference["image"], good).ok()
    assert compare(reference["image"], bad).psnr_db < 25.0


def test_fp16_overflow_shows_as_non_finite(packages):
    path, reference = packages.get("overflow", "iOS17")
    program = load_program(path)
    fp32 = run_program(program, INPUTS["overflow"], mode="fp32")["y"]
    fp16 = run_program(program, INPUTS["overflow"], mode="fp16")["y"]
    assert np.isfinite(fp32).all()
    assert compare(reference["y"], fp32).psnr_db >= MIN_PSNR_DB
    assert compare(reference["y"], fp16).non_finite == fp16.size  # 1e6 * x leaves fp16 (max 65504)


def _random_op_package(tmp_path):
    """A valid ML program using `random_normal`, which the interpreter cannot reproduce."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 3))], opset_version=ct.target.iOS16)
    def prog(x):
        noise = mb.random_normal(shape=np.array([2, 3], dtype=np.int32), name="noise_op")
        return mb.add(x=x, y=noise, name="y")

    path = tmp_path / "random.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16).save(str(path))
    return path


def test_unsupported_op_is_a_clear_user_error(tmp_path):
    path = _random_op_package(tmp_path)
    assert "random_normal" not in supported_ops()
    with pytest.raises(UserError) as err:
        load_program(path)
    message = str(err.value)
    assert "random_normal" in message and "noise_op" in message and str(path) in message


def test_unregistered_kernel_is_reported_by_name(packages, monkeypatch):
    path, _ = packages.get("unet")
    monkeypatch.delitem(KERNELS, "einsum")
    with pytest.raises(UserError, match=r"unsupported Core ML op 'einsum' \(operation '.+'\) in .*mlpackage"):
        load_program(path)


def test_bad_inputs_and_paths_are_user_errors(packages, tmp_path):
    path, _ = packages.get("text")
    program = load_program(path)
    ids = INPUTS["text"]["input_ids"]
    with pytest.raises(UserError, match="expected inputs"):
        run_program(program, {})
    with pytest.raises(UserError, match=r"expected input_ids of shape \(1, 77\), got \(1, 76\)"):
        run_program(program, {"input_ids": ids[:, :76]})
    with pytest.raises(UserError, match="as integers"):
        run_program(program, {"input_ids": ids.astype(np.float32)})
    with pytest.raises(UserError, match="mode"):
        run_program(program, INPUTS["text"], mode="bf16")
    with pytest.raises(UserError, match="does not exist"):
        load_program(tmp_path / "missing.mlpackage")
    (tmp_path / "empty.mlpackage").mkdir()
    with pytest.raises(UserError, match="Manifest.json"):
        load_program(tmp_path / "empty.mlpackage")
    broken = tmp_path / "broken.mlpackage"
    shutil.copytree(path, broken)
    (broken / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").unlink()
    with pytest.raises(UserError, match="broken.mlpackage"):
        load_program(broken)
