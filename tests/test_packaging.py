"""The package as users install it: bundled assets found through the package, one tokenizer."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import run_cli
from snapfusion_coreml import assets
from snapfusion_coreml.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_assets_are_found_through_the_package():
    root = assets.assets_dir()
    assert root == Path(assets.__file__).parent / "models"
    assert {p.stem for p in assets.layouts_dir().glob("*.json")} >= {"sd-v1.5", "snapfusion", "snapfusion-small"}
    assert (assets.tokenizer_dir() / "vocab.json").is_file() and (assets.tokenizer_dir() / "merges.txt").is_file()
    assert (assets.default_model_dir() / "model_index.json").is_file()


def test_bundled_model_carries_the_bundled_tokenizer():
    """models/default/tokenizer is the model folder's own copy of models/tokenizer: the same BPE."""
    own, bundled = assets.default_model_dir() / "tokenizer", assets.tokenizer_dir()
    assert json.loads((own / "vocab.json").read_text("utf-8")) == json.loads((bundled / "vocab.json").read_text("utf-8"))
    assert (own / "merges.txt").read_text("utf-8").split("\n") == (bundled / "merges.txt").read_text("utf-8").split("\n")


def test_missing_assets_name_the_folder(monkeypatch, tmp_path):
    """An install without the data files (e.g. a wheel built without package data) says so in one line."""
    monkeypatch.setattr(assets.importlib.resources, "files", lambda package: tmp_path)
    with pytest.raises(UserError, match=r"^expected the bundled models folder .* got none; reinstall .* \(in .*models\)$"):
        assets.default_model_dir()


@pytest.mark.parametrize("module, extra, call", [
    ("accelerate", "train", lambda: __import__("snapfusion_coreml.train.loop", fromlist=["x"]).make_accelerator(None)),
    ("matplotlib", "report", lambda: __import__("snapfusion_coreml.device_benchmark.report", fromlist=["x"]).plot([], Path("p.png"))),
])
def test_missing_extra_names_the_extra(monkeypatch, module, extra, call):
    """Without an extra installed, the feature needing it says which extra to install, in one line."""
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(UserError, match=rf"^expected the optional package '{module}' for .*, got none installed; "
                                        rf"install snapfusion-coreml\[{extra}\]$"):
        call()


def _run_test_script(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess:
    """scripts/test.sh copied into an empty checkout, on a PATH with neither swift nor python3: it
    gets as far as its Swift decision and the first install step, and can touch nothing real."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "test.sh", root / "scripts" / "test.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dirname").symlink_to(shutil.which("dirname"))
    env = {"PATH": str(bin_dir), **({"CI": "true"} if ci else {})}
    return subprocess.run([shutil.which("bash"), str(root / "scripts" / "test.sh")], env=env, capture_output=True,
                          text=True, timeout=60)


def test_ci_without_swift_fails_first(tmp_path):
    done = _run_test_script(tmp_path, ci=True)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: CI=true but no Swift toolchain was found (no swift on PATH); "
                                   "the Swift package must be tested on CI")
    assert done.stdout == ""  # nothing else ran


def test_without_swift_users_get_a_note_and_the_python_steps(tmp_path):
    done = _run_test_script(tmp_path, ci=False)
    assert done.stdout.startswith("note: no Swift toolchain found (no swift on PATH): the Swift package tests are skipped")
    assert "python3: command not found" in done.stderr  # it went on to install the Python environment


def test_cli_names_the_missing_extra_and_writes_nothing(monkeypatch, tmp_path, capsys):
    """The command line prints the extra as typed ("[report]" is text, not console markup), exits 2
    and leaves no output folder behind."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run_cli(["report", str(REPO / "tests" / "golden" / "swift" / "benchmark.json"), "-o",
                            str(tmp_path / "report")], capsys)
    assert code == 2
    assert err.strip().endswith("got none installed; install snapfusion-coreml[report]")
    assert not (tmp_path / "report").exists()
