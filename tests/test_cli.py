"""The CLI as users run it: exit codes, one-line errors, outputs."""

import json

import numpy as np
import pytest
from PIL import Image

from cli_runner import run_cli


def test_unknown_preset_is_one_line_and_non_zero(tiny_model_dir, tmp_path, capsys):
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(tmp_path / "o"), "--layout", "nope"], capsys)
    assert code == 2 and "unknown layout preset 'nope'" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_layout_that_does_not_fit(tiny_model_dir, tmp_path, capsys):
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(tmp_path / "o"), "--layout", "snapfusion"], capsys)
    assert code == 2 and "does not fit the weights" in err


def test_missing_folder_and_missing_index(tmp_path, capsys):
    code, _, err = run_cli(["convert", str(tmp_path / "absent"), "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and "model folder not found" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["convert", str(tmp_path / "empty"), "-o", str(tmp_path / "o")], capsys)
    assert code == 2 and "model_index.json" in err


def test_bad_option_values(tiny_model_dir, tmp_path, capsys):
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(tmp_path / "o"), "--attention", "flash"], capsys)
    assert code == 2 and "flash" in err
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(tmp_path / "o"), "--palettize", "3"], capsys)
    assert code == 2 and "--palettize" in err


@pytest.mark.slow
def test_convert_decoder_and_inspect_json(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "o"
    code, stdout, err = run_cli(["convert", str(tiny_model_dir), "-o", str(out), "--components", "decoder"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["VAEDecoder.mlpackage", "merges.txt", "pipeline.json", "vocab.json"]
    code, stdout, _ = run_cli(["inspect", str(out), "--json"], capsys)
    info = json.loads(stdout)
    assert code == 0 and info["packages"][0]["inputs"][0] == {"name": "z", "shape": [1, 4, 8, 8], "dtype": "float32"}
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(out), "--components", "decoder"], capsys)
    assert code == 2 and "--overwrite" in err


def test_generate_is_deterministic(tiny_model_dir, tmp_path, capsys):
    args = ["generate", str(tiny_model_dir), "--prompt", "a red fox", "--steps", "2", "--seed", "7"]
    assert run_cli(args + ["-o", str(tmp_path / "a.png")], capsys)[0] == 0
    assert run_cli(args + ["-o", str(tmp_path / "b.png")], capsys)[0] == 0
    a, b = np.asarray(Image.open(tmp_path / "a.png")), np.asarray(Image.open(tmp_path / "b.png"))
    assert a.shape == (64, 64, 3) and (a == b).all()
    code, _, err = run_cli(args + ["-o", str(tmp_path / "c.jpg")], capsys)
    assert code == 2 and ".png" in err


def test_inspect_incomplete_folder(tmp_path, capsys):
    (tmp_path / "half").mkdir()
    code, _, err = run_cli(["inspect", str(tmp_path / "half")], capsys)
    assert code == 2 and "pipeline.json" in err


@pytest.mark.slow
def test_palettize_the_decoder_by_name(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(out), "--components", "decoder",
                            "--palettize", "decoder=8", "--palettize-mode", "uniform"], capsys)
    assert code == 0, err
    manifest = json.loads((out / "pipeline.json").read_text())
    assert manifest["components"]["decoder"]["compression"]["bits"] == 8
