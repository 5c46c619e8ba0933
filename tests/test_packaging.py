"""The package as users install it: bundled assets found through the package, one tokenizer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from snapfusion_coreml import assets
from snapfusion_coreml.errors import UserError


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
    ("matplotlib", "report", lambda: __import__("snapfusion_coreml.report", fromlist=["x"]).plot([], Path("p.png"))),
])
def test_missing_extra_names_the_extra(monkeypatch, module, extra, call):
    """Without an extra installed, the feature needing it says which extra to install, in one line."""
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(UserError, match=rf"^expected the optional package '{module}' for .*, got none installed; "
                                        rf"install snapfusion-coreml\[{extra}\]$"):
        call()
