"""Files written by the Swift harness (ios_app, fake backend) read by the Python side.

tests/golden/swift/benchmark.json and latency_table.json are produced by
`SNAPFUSION_WRITE_GOLDEN=1 swift test` in ios_app (BenchmarkTests.goldenOutputsForPython) and committed;
benchmark_v1.json is the same fake benchmark as the harness wrote it in format version 1 (before
format 2), kept unchanged so that the reader is shown to accept files of older apps; these tests check that the training code's
latency-table reader and the report aggregator accept them, and that the Swift percentiles agree
with numpy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from snapfusion_coreml.device_benchmark.report import PUBLISHED, comparison_table, differences, load_benchmark, load_estimate, markdown_table, write_report
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.latency.table import load_latency_table

SWIFT = Path(__file__).resolve().parent / "golden" / "swift"
BENCHMARK = SWIFT / "benchmark.json"
# The same fake benchmark as written by format version 1 (kept to prove older files still read)
BENCHMARK_V1 = SWIFT / "benchmark_v1.json"
TABLE = SWIFT / "latency_table.json"


def test_latency_table_reader_accepts_swift_output():
    table = load_latency_table(TABLE)
    assert not table.estimated
    assert set(table.device) == {"model", "os", "compute_units"}
    assert table.device["compute_units"] == "cpuAndNeuralEngine"
    assert [e.name for e in table.entries] == [
        "down_blocks.1.resnets.0", "down_blocks.1.attentions.0", "mid_block.resnets.0", "up_blocks.1.attentions.2",
    ]
    assert all(0 < e.p50_ms <= e.p95_ms for e in table.entries)
    assert table.entries[0].in_channels == 320 and table.entries[0].batch == 2
    assert table.lookup("up_blocks.1", "transformer", 2) is table.by_name()["up_blocks.1.attentions.2"]
    assert table.total_ms() == pytest.approx(sum(e.p50_ms for e in table.entries))


def test_swift_summary_matches_numpy():
    data = json.loads(BENCHMARK.read_text())
    runs = data["runs"]
    assert len(runs) == data["config"]["runs"] >= 2
    samples = {
        "text_encoder_ms": [r["text_encoder_ms"] for r in runs],
        "unet_step_ms": [t for r in runs for t in r["unet_step_ms"]],
        "decoder_ms": [r["decoder_ms"] for r in runs],
        "end_to_end_ms": [r["end_to_end_ms"] for r in runs],
        "peak_memory_bytes": [r["peak_memory_bytes"] for r in runs],
    }
    assert len(samples["unet_step_ms"]) == len(runs) * data["config"]["steps"]
    assert np.percentile(samples["unet_step_ms"], 95) > np.percentile(samples["unet_step_ms"], 50)
    for stage, values in samples.items():
        summary = data["summary"][stage]
        assert summary["mean"] == pytest.approx(np.mean(values), rel=1e-12)
        assert summary["p50"] == pytest.approx(np.percentile(values, 50), rel=1e-12)
        assert summary["p95"] == pytest.approx(np.percentile(values, 95), rel=1e-12)


def test_aggregator_reads_swift_benchmark():
    result = load_benchmark(BENCHMARK)
    assert result.steps == 8 and result.unet_batch == 2 and result.runs >= 2
    assert result.cold_load_ms > result.warm_load_ms > 0
    table = markdown_table([result])
    assert result.device_model in table
    assert "published" in table.lower()
    for figure in PUBLISHED:
        assert figure.label in table
    assert "1.96 s" in table


def test_version_2_fields_are_read():
    result = load_benchmark(BENCHMARK)
    assert result.version == 2 and result.build_configuration == "release"
    assert result.thermal_state == "nominal" and result.fallbacks == () and not result.stage_times_include_loads
    assert result.notes() == []


def test_version_1_files_still_read():
    old, new = load_benchmark(BENCHMARK_V1), load_benchmark(BENCHMARK)
    assert old.version == 1 and old.build_configuration is None and old.thermal_state is None
    assert (old.steps, old.unet_batch, old.runs) == (new.steps, new.unet_batch, new.runs)
    assert any("format 1" in note for note in old.notes())
    assert "format 1: cold load not measured after unloading" in markdown_table([old, new])


def _edited(tmp_path, edit) -> Path:
    data = json.loads(BENCHMARK.read_text())
    edit(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


def test_fallback_debug_build_heat_and_reduce_memory_are_reported(tmp_path):
    def edit(data):
        data["runs"][1]["compute_units"]["unet"] = "cpuAndGPU"
        data["runs"][2]["thermal_state"] = {"start": "fair", "end": "serious"}
        data["environment"]["build_configuration"] = "debug"
        data["config"]["reduce_memory"] = data["config"]["stage_times_include_loads"] = True

    result = load_benchmark(_edited(tmp_path, edit))
    assert result.fallbacks == ("unet: cpuAndGPU",) and result.thermal_state == "serious"
    table = markdown_table([result])
    for text in ("ran on unet: cpuAndGPU after NaN", "debug build", "throttled (thermal state serious)",
                 "stage times include loads"):
        assert text in table


def _estimate(tmp_path, **changes) -> Path:
    data = {"layout": "snapfusion", "estimated": True, "steps": 8, "image_size": 64, "device_model": "Linux x86_64",
            "unet_batch": 2, "unet_step_ms": 200.0, "unet_other_ms": 10.0, "text_encoder_ms": 4.0,
            "text_encoder_runs": 2, "decoder_ms": 100.0, "end_to_end_ms": 1708.0, "blocks": {}}
    data.update(changes)
    path = tmp_path / f"estimate-{len(list(tmp_path.glob('estimate-*')))}.json"
    path.write_text(json.dumps(data))
    return path


def test_estimate_is_compared_with_the_same_run_and_differences_are_named(tmp_path):
    result = load_benchmark(BENCHMARK)
    same = load_estimate(_estimate(tmp_path, device_model=result.device_model))
    assert differences(same, result) == []
    other = load_estimate(_estimate(tmp_path, steps=4, image_size=512, unet_batch=1))
    assert differences(other, result) == [
        "steps 4 (estimate) vs 8 (device)", "image size 512 (estimate) vs 64 (device)", "UNet batch 1 (estimate) vs 2 (device)"]
    table = comparison_table([same, other], [result])
    measured = result.summary["end_to_end_ms"].p50
    assert f"{measured / 1708.0:.2f}x" in table
    assert "| yes |" in table and "no: steps 4 (estimate) vs 8 (device)" in table


def test_estimate_without_device_or_batch_reads_as_the_cost_models_calibration(tmp_path):
    path = _estimate(tmp_path)
    data = json.loads(path.read_text())
    del data["device_model"], data["unet_batch"]
    path.write_text(json.dumps(data))
    estimate = load_estimate(path)
    assert (estimate.device_model, estimate.unet_batch) == ("iPhone15,2", 2)
    assert differences(estimate, load_benchmark(BENCHMARK)) == ["device iPhone15,2 (estimate) vs Linux x86_64 (device)"]


def test_latency_estimate_json_records_device_and_batch(capsys):
    from tests.cli_runner import run_cli

    code, stdout, _ = run_cli(["latency", "estimate", "--layout", "snapfusion", "--steps", "8", "--json"], capsys)
    assert code == 0
    data = json.loads(stdout)
    assert (data["device_model"], data["unet_batch"], data["steps"]) == ("iPhone15,2", 2, 8)


def test_report_command_with_estimate(tmp_path):
    from snapfusion_coreml.cli.report import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    out = tmp_path / "report"
    estimate = _estimate(tmp_path, steps=4)
    result = CliRunner().invoke(app, ["report", str(BENCHMARK), "--estimate", str(estimate), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = (out / "report.md").read_text()
    assert "Cost-model estimate vs device" in text and "steps 4 (estimate) vs 8 (device)" in text


def test_write_report_creates_markdown_and_png(tmp_path):
    written = write_report([BENCHMARK, BENCHMARK], tmp_path / "out")
    assert written.markdown.read_text().count(load_benchmark(BENCHMARK).device_model) == 2
    png = written.plot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # the plot gets a new file's mode like report.md (io.atomic_file), not the temporary's 0o600
    assert written.plot.stat().st_mode & 0o777 == written.markdown.stat().st_mode & 0o777
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.md", "report.png"]


def test_report_command(tmp_path):
    from snapfusion_coreml.cli.report import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # keep typer in multi-command mode
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", str(BENCHMARK), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "report.md").is_file() and (out / "report.png").is_file()


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "invalid JSON"),
        ('{"format": "snapfusion-latency-table", "version": 1}', "expected format 'snapfusion-benchmark'"),
        ('{"format": "snapfusion-benchmark", "version": 3}', "version 1 or 2, got"),
        ('{"format": "snapfusion-benchmark", "version": 1, "environment": {}}', "malformed benchmark file"),
    ],
)
def test_bad_benchmark_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as info:
        load_benchmark(path)
    assert str(path) in str(info.value)


def test_no_files_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="at least one"):
        write_report([], tmp_path)


def test_core_ai_runs_say_so(tmp_path):
    """A Core AI folder's benchmark (environment.runtime "coreai") is labelled by its runtime, not compute units."""
    assert load_benchmark(BENCHMARK).compute_units == "cpuAndNeuralEngine"

    def edit(data):
        data["environment"]["runtime"], data["environment"]["compute_units"] = "coreai", "all"
        for run in data["runs"]:
            del run["compute_units"]  # the Core AI backend does not report placement

    result = load_benchmark(_edited(tmp_path, edit))
    assert result.compute_units == "Core AI" and result.fallbacks == ()
    assert "| Core AI |" in markdown_table([result])
