"""`eval` on the tiny pipeline, as a model folder and as a converted folder, and `eval train-judge`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cli_runner import run_cli
from snapfusion_coreml.eval import shapes
from snapfusion_coreml.metrics import MIN_PSNR_DB, psnr

pytestmark = pytest.mark.usefixtures("one_thread")

SWEEP = ["--count", "3", "--guidance", "1,3", "--reference-count", "8"]


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.mark.slow
def test_shapes_domain_eval_of_a_model_folder(tiny_model_dir, small_judge_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    code, stdout, err = run_cli(["eval", str(tiny_model_dir), "-o", str(out), *SWEEP, "--judge", str(small_judge_dir)], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["backend"] == "PyTorch" and results["prompts"] == {"source": "shapes:3", "count": 3, "image_seeds": [0, 2]}
    assert results["reference"] == "shapes:4" and results["judge"]["command"] == "test"
    assert [r["guidance"] for r in results["results"]] == [1.0, 3.0]
    for row in results["results"]:
        acc = row["judge_accuracy"]
        assert set(acc) == {"shape", "color", "background", "attributes", "all"}
        assert all(v * 3 == pytest.approx(round(v * 3)) for k, v in acc.items() if k != "attributes")
        assert np.isfinite(row["judge_fd"]) and row["judge_fd"] >= 0
    table = (out / "results.md").read_text()
    assert "| guidance w | judge accuracy | shape | color | background | all three | judge FD |" in table
    assert table.count("\n| 1 |") == 1 and table.count("\n| 3 |") == 1 and "judge accuracy" in stdout
    assert _png(out / "grid.png").shape == (2 * 64, 3 * 64, 3)
    assert _png(out / "sweep.png").ndim == 3
    # image i is `generate` with prompt i of shapes:3 and seed i
    prompt = shapes.scene(3, 1).caption()
    code, _, err = run_cli(["generate", str(tiny_model_dir), "--prompt", prompt, "--seed", "1", "--guidance", "3",
                            "-o", str(tmp_path / "one.png")], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(_png(tmp_path / "one.png"), _png(out / "images" / "w3" / "0001.png"))


@pytest.mark.slow
def test_converted_folder_eval_draws_the_model_folders_images(tiny_model_dir, tiny_converted_dir, small_judge_dir,
                                                              tmp_path, capsys):
    args = [*SWEEP, "--judge", str(small_judge_dir), "--prompts", "shapes:9"]
    code, _, err = run_cli(["eval", str(tiny_model_dir), "-o", str(tmp_path / "torch"), *args], capsys)
    assert code == 0, err
    code, stdout, err = run_cli(["eval", str(tiny_converted_dir), "-o", str(tmp_path / "coreml"), *args, "--json"], capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "coreml" / "results.json").read_text())
    assert json.loads(stdout) == {"out": str(tmp_path / "coreml"), **results}  # --json: strict JSON, nothing else
    assert results["backend"] == "Core ML packages (interpreter, fp16)" and results["prompts"]["source"] == "shapes:9"
    for w in ("w1", "w3"):
        for i in range(3):
            a, b = (_png(tmp_path / f / "images" / w / f"{i:04d}.png") / 127.5 - 1.0 for f in ("torch", "coreml"))
            assert psnr(a, b) >= MIN_PSNR_DB


@pytest.mark.slow
def test_clip_score_and_fid_with_user_weights(tiny_model_dir, clip_dir, inception_file, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# COCO-like captions\na photo of an astronaut\n\na bowl of fruit on a table\na red bus\n")
    reference = tmp_path / "reference"
    reference.mkdir()
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(80, 64), (64, 96), (128, 128), (70, 70)]):  # any size: centre crop and resize
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(reference / f"{i}.{'jpg' if i % 2 else 'png'}")
    (reference / "notes.txt").write_text("not an image")
    out = tmp_path / "eval"
    code, _, err = run_cli(["eval", str(tiny_model_dir), "-o", str(out), "--prompts", str(prompts), "--count", "3",
                            "--guidance", "1,2", "--clip", str(clip_dir), "--inception", str(inception_file),
                            "--reference", str(reference)], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["judge"] is None and results["reference"] == str(reference)
    for row in results["results"]:
        assert set(row) == {"guidance", "images", "clip_score", "fid"}
        assert -1.0 <= row["clip_score"] <= 1.0 and row["fid"] > 0
    assert "| guidance w | CLIP score | FID |" in (out / "results.md").read_text()
    assert (out / "sweep.png").is_file()


@pytest.mark.slow
def test_bad_input_exits_2_and_keeps_an_existing_output(tiny_model_dir, small_judge_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "results.json").write_text("{}")
    empty = tmp_path / "empty"
    empty.mkdir()
    base = [str(tiny_model_dir), "--count", "2", "--judge", str(small_judge_dir)]
    cases = [
        (["-o", str(out)], "already exists; pass --overwrite"),
        (["-o", str(tmp_path / "a"), "--guidance", "0.5,2"], "expected guidance values >= 1"),
        (["-o", str(tmp_path / "a"), "--guidance", "x"], "expected --guidance as comma-separated numbers"),
        (["-o", str(tmp_path / "a"), "--prompts", str(tmp_path / "none.txt")], "expected --prompts shapes[:SEED] or a prompt-list file"),
        (["-o", str(tmp_path / "a"), "--reference", str(tmp_path / "nowhere")], "expected --reference shapes[:SEED] or an image folder"),
        (["-o", str(tmp_path / "a"), "--clip", str(tmp_path / "clip.pt")], "expected local CLIP weights"),
        (["-o", str(tmp_path / "a"), "--judge", str(empty)], "expected a judge config"),
        (["-o", str(tmp_path / "a"), "--judge", str(tmp_path)], "expected an output folder outside the input"),
    ]
    for extra, message in cases:
        code, _, err = run_cli(["eval", *base, *extra], capsys)
        assert code == 2 and message in " ".join(err.split()), err
    assert (out / "results.json").read_text() == "{}" and not (tmp_path / "a").exists()


@pytest.mark.slow
def test_train_judge_command(tmp_path, capsys):
    out = tmp_path / "judge"
    argv = ["eval", "train-judge", "-o", str(out), "--train-images", "64", "--epochs", "1", "--seed", "5"]
    code, stdout, err = run_cli([*argv, "--json"], capsys)
    assert code == 0, err
    record = json.loads((out / "judge.json").read_text())
    printed = json.loads(stdout)
    assert printed["out"] == str(out) and printed["held_out_accuracy"] == record["held_out_accuracy"]
    assert record["command"].startswith("snapfusion-coreml eval train-judge") and record["training"]["seed"] == 5
    assert "held-out accuracy (seed 2)" in " ".join(err.split())
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "--overwrite" in err
    code, _, err = run_cli(["eval", "train-judge", "-o", str(tmp_path / "j2"), "--seed", "2"], capsys)
    assert code == 2 and "expected a held-out seed other than the training seed" in err
