"""Bad input through the real entry point: one clear line on stderr and a non-zero exit."""

import json
import math
import sys

import pytest

from snapfusion_coreml.modeling.factory import build_tiny_pipeline
from snapfusion_coreml.modeling.loading import save_pipeline


def run_cli(monkeypatch, capsys, *args, stdout=None):
    """(exit code, stderr); with stdout=[], the command's stdout is appended to it."""
    from snapfusion_coreml.cli import main

    monkeypatch.setattr(sys, "argv", ["snapfusion-coreml", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    if stdout is not None:
        stdout.append(captured.out)
    return code, captured.err.strip()


@pytest.mark.parametrize("case", ["missing teacher", "steps do not divide", "empty data folder", "layout mismatch"])
@pytest.mark.slow
def test_bad_input_gets_one_clear_line(case, teacher_dir, prompts, tmp_path, monkeypatch, capsys):
    args = ["distill", "steps", str(teacher_dir), "--data", str(prompts), "-o", str(tmp_path / "out"),
            "--teacher-steps", "4", "--student-steps", "2", "--max-steps", "1"]
    expected = {"missing teacher": "not found", "steps do not divide": "divide",
                "empty data folder": "got none", "layout mismatch": "does not fit"}[case]
    if case == "missing teacher":
        args[2] = str(tmp_path / "no-such-model")
    elif case == "steps do not divide":
        args[args.index("--student-steps") + 1] = "3"
    elif case == "empty data folder":
        (tmp_path / "empty").mkdir()
        args[args.index("--data") + 1] = str(tmp_path / "empty")
    else:
        args += ["--student-layout", "sd-v1.5"]
    code, err = run_cli(monkeypatch, capsys, *args)
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("error:") and expected in err, err
    assert not (tmp_path / "out").exists()


def test_latency_estimate_prints_labelled_estimates(monkeypatch, capsys, tmp_path):
    code, _ = run_cli(monkeypatch, capsys, "latency", "estimate", "--layout", "snapfusion", "-o", str(tmp_path / "t.json"))
    assert code == 0
    assert (tmp_path / "t.json").is_file() and '"estimated": true' in (tmp_path / "t.json").read_text()
    code, err = run_cli(monkeypatch, capsys, "latency", "estimate")
    assert code != 0 and "MODEL or --layout" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_train_commands_end_to_end(tmp_path, prompts, monkeypatch, capsys):
    eps = tmp_path / "eps"
    save_pipeline(build_tiny_pipeline(prediction_type="epsilon"), eps)
    common = ["--max-steps", "2", "--batch-size", "2", "--lr", "1e-3", "--checkpoint-every", "0"]
    printed = []
    code, err = run_cli(monkeypatch, capsys, "train", "v-pred", str(eps), "--data", str(prompts), "-o", str(tmp_path / "v"),
                         "--data-steps", "2", "--train-text-encoder", *common, "--json", stdout=printed)
    assert code == 0, err
    result = json.loads(printed[0])  # --json: the whole stdout is one JSON object
    assert result["out"] == str(tmp_path / "v") and result["trained"] == "v-prediction fine-tune"
    assert result["steps"] == 2 and all(math.isfinite(result[k]) for k in ("first_loss", "last_loss"))
    code, err = run_cli(monkeypatch, capsys, "latency", "estimate", str(tmp_path / "v"))
    assert code == 0, err
