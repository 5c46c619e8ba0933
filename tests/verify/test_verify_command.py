"""`snapfusion-coreml verify` on tiny converted folders: passes, and catches what is wrong."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from cli_runner import run_cli
from snapfusion_coreml.convert import ConvertOptions, convert_pipeline
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.verify import check, native
from snapfusion_coreml.verify.check import resolve_modes, verify_folder
from weight_blobs import rewrite_largest_fp16_blob

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tiny_converted_dir):
    """All components of the tiny pipeline, fp16, UNet batch 2, converted from its folder."""
    return tiny_converted_dir


def _copy(folder, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def _corrupt_largest_fp16_blob(weight_bin) -> None:
    """Swap the two bytes of every value of the largest fp16 blob: garbage of every magnitude
    (a uniform scale would not do: a group norm after the conv cancels it)."""
    rewrite_largest_fp16_blob(weight_bin, lambda values: values.byteswap())


@pytest.mark.slow
def test_verify_passes_and_reports_every_output_and_mode(folder, tiny_model_dir, capsys):
    code, out, err = run_cli(["verify", str(folder), "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] and report["reference"] == str(tiny_model_dir) and report["modes"] == ["fp32", "fp16"]
    rows = {(c["component"], c["output"], c["mode"]): c for c in report["checks"]}
    outputs = [("text_encoder", "last_hidden_state"), ("text_encoder", "pooled_outputs"), ("unet", "noise_pred"),
               ("decoder", "image")]
    assert sorted(rows) == sorted((k, o, m) for k, o in outputs for m in ("fp32", "fp16"))
    for row in rows.values():
        assert row["ok"] and row["psnr_db"] >= 35.0 and row["non_finite"] == 0
    assert rows[("unet", "noise_pred", "fp16")]["shape"] == [2, 4, 8, 8]
    assert any("needs macOS" in note for note in report["notes"])

    code, out, _ = run_cli(["verify", str(folder), "--modes", "fp16", "--min-psnr", "30"], capsys)
    assert code == 0
    assert "noise_pred" in out and "pooled_outputs" in out and "FAIL" not in out and "fp32" not in out


@pytest.mark.slow
def test_altered_weights_fail_with_exit_code_1(folder, tmp_path, capsys):
    altered = _copy(folder, tmp_path)
    _corrupt_largest_fp16_blob(altered / "Unet.mlpackage" / "Data" / "com.apple.CoreML" / "weights" / "weight.bin")
    code, out, err = run_cli(["verify", str(altered), "--json"], capsys)
    assert code == 1
    assert "Unet.mlpackage differs from its sha256" in err and "unet noise_pred (fp16)" in err
    rows = json.loads(out)["checks"]
    assert all(not r["ok"] for r in rows if r["component"] == "unet")
    assert all(r["ok"] for r in rows if r["component"] != "unet")


@pytest.mark.slow
def test_fp16_overflow_is_reported_as_non_finite(tmp_path, capsys):
    from snapfusion_coreml.modeling.factory import build_tiny_pipeline
    from snapfusion_coreml.modeling.loading import save_pipeline

    pipeline = build_tiny_pipeline(prediction_type="v_prediction")
    head = pipeline.decoder.decoder
    with torch.no_grad():  # image values ~1e6: fine in fp32, past fp16's 65504 (weights stay below it)
        head.conv_norm_out.weight.mul_(100.0)
        head.conv_out.weight.mul_(1e5)
        assert float(head.conv_out.weight.abs().max()) < 65504
    save_pipeline(pipeline, tmp_path / "model")
    convert_pipeline(str(tmp_path / "model"), ConvertOptions(out=tmp_path / "out", components=("decoder",)))

    code, out, err = run_cli(["verify", str(tmp_path / "out"), "--json"], capsys)
    assert code == 1 and "non-finite values" in err
    rows = {r["mode"]: r for r in json.loads(out)["checks"]}
    assert rows["fp32"]["ok"] and rows["fp32"]["non_finite"] == 0
    assert not rows["fp16"]["ok"] and rows["fp16"]["non_finite"] > 0 and rows["fp16"]["psnr_db"] is None


@pytest.mark.slow
def test_unsupported_op_is_a_clear_error(folder, tmp_path, capsys):
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    # the decoder's declared I/O (z (1, 4, 8, 8) -> image (1, 3, 64, 64)), computed with an op the
    # interpreter does not run
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 8, 8))], opset_version=ct.target.iOS16)
    def prog(z):
        noise = mb.random_normal(shape=np.array([1, 3, 64, 64], dtype=np.int32), name="noise_op")
        return mb.add(x=noise, y=mb.reduce_mean(x=z, axes=[1, 2, 3], keep_dims=True), name="image")

    broken = _copy(folder, tmp_path)
    shutil.rmtree(broken / "VAEDecoder.mlpackage")
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16).save(
        str(broken / "VAEDecoder.mlpackage"))
    code, _, err = run_cli(["verify", str(broken)], capsys)
    assert code == 2
    assert "unsupported Core ML op 'random_normal' (operation 'noise_op" in err and "VAEDecoder.mlpackage" in err


def test_clear_errors_for_folder_package_and_reference(folder, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(["verify", str(empty)], capsys)
    assert code == 2 and "expected pipeline.json in" in err

    code, _, err = run_cli(["verify", str(folder), "--reference", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "reference model not found" in err and "--reference" in err

    moved = _copy(folder, tmp_path)
    manifest = json.loads((moved / "pipeline.json").read_text())
    manifest["source"]["model"] = str(tmp_path / "deleted-model")
    (moved / "pipeline.json").write_text(json.dumps(manifest))
    code, _, err = run_cli(["verify", str(moved)], capsys)
    assert code == 2 and "reference model not found" in err and "pass --reference MODEL" in err

    shutil.rmtree(moved / "VAEDecoder.mlpackage")
    code, _, err = run_cli(["verify", str(moved)], capsys)
    assert code == 2 and "expected package VAEDecoder.mlpackage (listed for decoder in pipeline.json)" in err

    code, _, err = run_cli(["verify", str(folder), "--modes", "fp8"], capsys)
    assert code == 2 and "expected --modes from fp32, fp16, coreml" in err


@pytest.mark.slow
def test_core_ml_runtime_only_on_macos(folder, monkeypatch):
    monkeypatch.setattr(native.sys, "platform", "linux")
    modes, notes = resolve_modes(None)
    assert modes == ("fp32", "fp16") and "needs macOS" in notes[0]
    with pytest.raises(UserError, match="without coreml"):
        resolve_modes(("fp16", "coreml"))

    # On macOS the default adds MLModel.predict beside the interpreter; here a stand-in model
    # (running the interpreter) checks the glue: inputs by name, chained chunks, outputs by name.
    from snapfusion_coreml.interpreter.execute import run_program
    from snapfusion_coreml.interpreter.program import load_program

    loaded = []

    class StandIn:
        def __init__(self, path, function=None):
            import coremltools as ct

            loaded.append(path.name)
            self.spec, self.program = ct.utils.load_spec(str(path)), load_program(path, function)

        def get_spec(self):
            return self.spec

        def predict(self, feed):
            return run_program(self.program, feed, "fp16")

    monkeypatch.setattr(native.sys, "platform", "darwin")
    monkeypatch.setattr(native, "_load", StandIn)
    assert resolve_modes(None) == (("fp32", "fp16", "coreml"), [])
    report = verify_folder(folder, modes=("coreml",))
    assert report.ok and loaded == ["TextEncoder.mlpackage", "Unet.mlpackage", "VAEDecoder.mlpackage"]
    assert {c.mode for c in report.checks} == {"coreml"} and len(report.checks) == 4
    assert check.ALL_MODES == ("fp32", "fp16", "coreml", "coreai")  # coreai: Apple's runtime, for Core AI folders
