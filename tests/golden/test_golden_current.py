"""The committed golden vectors must equal what make_golden.py writes today.

The Swift tests (ios_app) read tests/golden/*.json; if the Python reference (schedule.py, the
tokenizer, torch.randn) changes, this test fails until the files are regenerated with
`python tests/golden/make_golden.py` and the Swift side is checked against them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, GOLDEN / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _make_golden():
    return _load("make_golden")


def test_committed_golden_files_are_current(tmp_path):
    written = _make_golden().write_all(tmp_path)
    assert [p.name for p in written] == ["tokenizer.json", "random.json", "sampler.json", "pipelines.json",
                                           "blocks_manifests.json"]
    stale = [p.name for p in written if p.read_bytes() != (GOLDEN / p.name).read_bytes()]
    assert not stale, f"regenerate with `python tests/golden/make_golden.py`: {stale} differ"


def test_committed_sampler_golden_is_current(tmp_path):
    """samplers.json is diffusers' own output: a diffusers upgrade that changes any scheduler shows here."""
    written = _load("make_sampler_golden").write_samplers(tmp_path)
    assert written.read_bytes() == (GOLDEN / "samplers.json").read_bytes(), (
        "regenerate with `python tests/golden/make_sampler_golden.py` and rerun the Swift SamplersGoldenTests")


def test_golden_files_stay_small():
    total = sum(p.stat().st_size for p in GOLDEN.rglob("*.json"))
    # 400 KB until pipeline.json format 3 added its cases (several sizes) to pipelines.json
    assert total < 480 * 1024, f"golden JSON files total {total / 1024:.0f} KB"
