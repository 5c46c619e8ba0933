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


def test_committed_img2img_golden_is_current(tmp_path):
    """img2img.json is diffusers' own image-to-image arithmetic (get_timesteps, posterior sample, add_noise, step)."""
    written = _load("make_img2img_golden").write_img2img(tmp_path)
    assert written.read_bytes() == (GOLDEN / "img2img.json").read_bytes(), (
        "regenerate with `python tests/golden/make_img2img_golden.py` and rerun the Swift ImageToImageGoldenTests")


# Files with a budget of their own (KB), outside the shared total.
OWN_BUDGET_KB = {"img2img.json": 150}


def test_golden_files_stay_small():
    # 400 KB until pipeline.json format 3 added its cases (encoder, several sizes) to pipelines.json
    total = sum(p.stat().st_size for p in GOLDEN.rglob("*.json") if p.name not in OWN_BUDGET_KB)
    assert total < 480 * 1024, f"golden JSON files total {total / 1024:.0f} KB"
    for name, budget in OWN_BUDGET_KB.items():
        size = (GOLDEN / name).stat().st_size
        assert size < budget * 1024, f"{name}: {size / 1024:.0f} KB over its {budget} KB budget"
