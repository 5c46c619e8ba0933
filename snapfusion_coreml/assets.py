"""The run-time assets shipped inside the package: UNet layout presets, the CLIP tokenizer and the
bundled default model.

They live in the repository's models/ folder; `snapfusion_coreml/models` links to it, so the
package finds them through importlib.resources alike in a source checkout, an editable install
and an installed wheel (which carries real copies: pyproject.toml's package data).

  models/layouts/NAME.json   layout presets (config.resolve_layout)
  models/tokenizer/          vocab.json + merges.txt, SD-1.5's CLIP BPE tokenizer
  models/default/            the bundled default model folder (README "The bundled default model")

models/default/tokenizer holds the same two files as models/tokenizer: a model folder carries its
own tokenizer (every train/distill/evolve output does, and models/default is replaced wholesale by
trained weights in that format), while models/tokenizer is the one the tests, the Swift golden
files and random pipelines read. Git stores the identical files once;
tests/test_packaging.py checks that the two stay the same tokenizer.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from .errors import expected


def assets_dir() -> Path:
    """The folder holding layouts/, tokenizer/ and default/, as a real file-system path."""
    root = importlib.resources.files(__package__) / "models"
    if not isinstance(root, Path) or not root.is_dir():
        raise expected("the bundled models folder (layouts, tokenizer, default model) in the installed package",
                       "none; reinstall snapfusion-coreml from its wheel or a source checkout", str(root))
    return root


def layouts_dir() -> Path:
    """The layout presets: one NAME.json per preset."""
    return assets_dir() / "layouts"


def tokenizer_dir() -> Path:
    """The bundled CLIP tokenizer (vocab.json + merges.txt)."""
    return assets_dir() / "tokenizer"


def default_model_dir() -> Path:
    """The bundled default model folder, what MODEL defaults to on the command line."""
    return assets_dir() / "default"


def judge_dir() -> Path:
    """The shapes-domain attribute judge of `eval` (made by `snapfusion-coreml eval train-judge`)."""
    return assets_dir() / "judge"
