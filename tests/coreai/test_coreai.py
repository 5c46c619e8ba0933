"""`convert --format coreai`: the tiny SD folder as Core AI `.aimodel` assets, each run by Apple's
Core AI runtime (coreai-core) on this machine against PyTorch, `generate OUT` against the Core ML
folder's image, and broken assets refused with one line.

Tests that convert or run assets need the `[coreai]` extra; without it they are skipped with a
note. The checks of flags, of pipeline.json and of the missing-extra message run everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from cli_runner import run_cli
from snapfusion_coreml.contracts.pipeline_json import PipelineManifest
from snapfusion_coreml.metrics import MIN_PSNR_DB, psnr

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPT = "a red circle on a blue background"
IMAGE_PSNR_DB = 30.0  # the Core AI image against the Core ML folder's: two float16 runtimes, 20 DDIM steps
HAVE_COREAI = all(importlib.util.find_spec(m) is not None for m in ("coreai", "coreai_torch", "coreai_opt"))
needs_coreai = pytest.mark.skipif(not HAVE_COREAI, reason="the [coreai] extra (coreai-core, coreai-torch, coreai-opt) "
                                                          "is not installed: Core AI assets are neither written nor run")


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.float64) / 127.5 - 1.0


@pytest.fixture(scope="module")
def coreai_dir(tiny_model_dir, convert_once):
    """The tiny folder converted with --format coreai (float16, no palettization)."""
    if not HAVE_COREAI:
        pytest.skip("the [coreai] extra is not installed")
    return convert_once(tiny_model_dir, format="coreai")


@needs_coreai
@pytest.mark.slow
def test_folder_keeps_the_pipeline_json_contract(coreai_dir, tiny_converted_dir):
    names = sorted(p.name for p in coreai_dir.iterdir())
    assert names == ["TextEncoder.aimodel", "Unet.aimodel", "VAEDecoder.aimodel", "merges.txt", "pipeline.json", "vocab.json"]
    coreai, coreml = (json.loads((d / "pipeline.json").read_text()) for d in (coreai_dir, tiny_converted_dir))
    for key, component in coreai["components"].items():
        other = coreml["components"][key]
        assert component["format"] == "coreai" and other["format"] == "coreml"
        assert component["deployment_target"] == "iOS27" and component["precision"] == "float16"
        assert component["inputs"] == other["inputs"] and component["outputs"] == other["outputs"]
        assert component["file"].endswith(".aimodel") and component["compression"] == {"mode": "none"}
    # everything but the components is the Core ML folder's
    assert {k: v for k, v in coreai.items() if k != "components"} == {k: v for k, v in coreml.items() if k != "components"}


@needs_coreai
@pytest.mark.slow
def test_every_asset_runs_in_apples_runtime_against_pytorch(coreai_dir, capsys):
    code, out, err = run_cli(["verify", str(coreai_dir), "--json"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["modes"] == ["coreai"] and report["integrity"] == []
    checks = {(c["component"], c["output"]): c for c in report["checks"]}
    assert set(checks) == {("text_encoder", "last_hidden_state"), ("text_encoder", "pooled_outputs"),
                           ("unet", "noise_pred"), ("decoder", "image")}
    for check in checks.values():
        assert check["mode"] == "coreai" and check["psnr_db"] >= MIN_PSNR_DB, check


@needs_coreai
@pytest.mark.slow
def test_generate_draws_the_core_ml_folders_image(coreai_dir, tiny_converted_dir, tmp_path, capsys):
    args = ["--prompt", PROMPT, "--seed", "3", "--guidance", "5"]
    code, _, err = run_cli(["generate", str(tiny_converted_dir), *args, "-o", str(tmp_path / "coreml.png")], capsys)
    assert code == 0, err
    code, _, err = run_cli(["generate", str(coreai_dir), *args, "-o", str(tmp_path / "coreai.png")], capsys)
    assert code == 0, err
    assert "Core AI runtime" in err
    reference, image = _png(tmp_path / "coreml.png"), _png(tmp_path / "coreai.png")
    assert image.shape == reference.shape == (64, 64, 3)
    assert psnr(reference, image) >= IMAGE_PSNR_DB
    code, _, err = run_cli(["generate", str(coreai_dir), *args[:2], "--seed", "4", "--guidance", "5",
                            "-o", str(tmp_path / "other.png")], capsys)
    assert code == 0, err
    assert psnr(reference, _png(tmp_path / "other.png")) < IMAGE_PSNR_DB  # the bar is not met by any image


@needs_coreai
@pytest.mark.parametrize("damage", ["truncated", "not_an_asset"])
def test_a_broken_asset_is_refused_with_one_line(coreai_dir, tmp_path, capsys, damage):
    broken = tmp_path / "broken"
    shutil.copytree(coreai_dir, broken)
    unet = broken / "Unet.aimodel"
    if damage == "truncated":
        program = next(unet.glob("*.mlirb"))
        program.write_bytes(program.read_bytes()[: program.stat().st_size // 2])
        wanted = "to match its sha256"
    else:
        shutil.rmtree(unet)
        unet.mkdir()
        (unet / "weights.bin").write_bytes(b"\0" * 64)
        wanted = "expected a program (*.mlirb)"
    for argv in (["verify", str(broken)], ["generate", str(broken), "--prompt", PROMPT, "-o", str(tmp_path / "x.png")]):
        code, out, err = run_cli(argv, capsys)
        lines = [line for line in err.strip().splitlines() if line.strip()]
        assert code == 2, (argv, err)
        assert len(lines) == 1 and wanted in lines[0] and "Unet.aimodel" in lines[0], err
        assert "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


@needs_coreai
@pytest.mark.slow
def test_palettized_unet_keeps_quality(micro_model_dir, tmp_path, capsys):
    out = tmp_path / "pal"
    code, stdout, err = run_cli(["convert", str(micro_model_dir), "-o", str(out), "--format", "coreai", "--components", "unet",
                                 "--palettize", "8", "--json"], capsys)
    assert code == 0, err
    assert json.loads(stdout)["format"] == "coreai"
    unet = PipelineManifest.read(out).component("unet")
    assert unet.format == "coreai" and unet.compression.mode == "palettize" and unet.compression.bits == 8
    assert unet.compression.method == "kmeans" and unet.compression.granularity == "per_grouped_channel"
    code, stdout, err = run_cli(["verify", str(out), "--json"], capsys)
    assert code == 0, err
    (check,) = json.loads(stdout)["checks"]
    assert check["mode"] == "coreai" and check["psnr_db"] >= MIN_PSNR_DB


@needs_coreai
@pytest.mark.slow
def test_full_lcm_unet_takes_its_guidance_embedding_in_apples_runtime(lcm_unet_folder, tmp_path, capsys):
    """A full LCM UNet (time_cond_proj_dim) exports `timestep_cond` and runs in Core AI as the PyTorch UNet does."""
    out = tmp_path / "lcm"
    code, _, err = run_cli(["convert", str(lcm_unet_folder[0]), "-o", str(out), "--format", "coreai", "--components", "unet"], capsys)
    assert code == 0, err
    manifest = PipelineManifest.read(out)
    unet = manifest.component("unet")
    assert unet.input("timestep_cond") is not None and unet.input("timestep_cond").shape[-1] == 16
    assert manifest.guidance.embedding_dim == 16 and manifest.sampler.name == "lcm"
    code, stdout, err = run_cli(["verify", str(out), "--json"], capsys)
    assert code == 0, err
    (check,) = json.loads(stdout)["checks"]
    assert check["mode"] == "coreai" and check["component"] == "unet" and check["psnr_db"] >= MIN_PSNR_DB


@pytest.mark.parametrize("flags, wanted", [
    (["--chunk-unet"], "expected --chunk-unet only with --format coreml"),
    (["--palettize", "mixed:4"], "expected --palettize none, 4, 6 or 8 with --format coreai"),
    (["--palettize", "6", "--palettize-mode", "uniform"], "expected --palettize-mode kmeans with --format coreai"),
    (["--format", "onnx"], "expected --format coreml or coreai, got 'onnx'"),
])
def test_flags_core_ai_does_not_take_are_refused_with_one_line(tiny_model_dir, tmp_path, capsys, flags, wanted):
    argv = ["convert", str(tiny_model_dir), "-o", str(tmp_path / "out"), "--format", "coreai", *flags]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and err.strip().count("\n") == 0 and wanted in err, err
    assert not (tmp_path / "out").exists()


def test_missing_extra_is_named_in_one_line(tiny_model_dir, tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "coreai_torch" else real(name, *a))
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(tmp_path / "out"), "--format", "coreai"], capsys)
    assert code == 2 and err.strip().count("\n") == 0, err
    assert "coreai-torch" in err and "snapfusion-coreml[coreai]" in err
    assert not (tmp_path / "out").exists()


def test_pipeline_json_format_reads_coreml_for_older_folders_and_checks_the_value(tiny_converted_dir):
    data = json.loads((tiny_converted_dir / "pipeline.json").read_text())
    for component in data["components"].values():
        del component["format"]
    assert {c.format for c in PipelineManifest.from_dict(data).components.values()} == {"coreml"}
    data["components"]["unet"]["format"] = "onnx"
    from snapfusion_coreml.errors import UserError

    with pytest.raises(UserError, match="components.unet.format.*coreml or coreai.*onnx"):
        PipelineManifest.from_dict(data)
