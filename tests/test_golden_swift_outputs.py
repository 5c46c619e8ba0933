"""Files written by the Swift harness (ios_app, fake backend) read by the Python side.

tests/golden/swift/*.json are produced by `SNAPFUSION_WRITE_GOLDEN=1 swift test` in ios_app
(BenchmarkTests.goldenOutputsForPython) and committed; these tests check that the training code's
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

from snapfusion_coreml.errors import UserError
from snapfusion_coreml.latency.table import load_latency_table
from snapfusion_coreml.report import PUBLISHED, load_benchmark, markdown_table, write_report

SWIFT = Path(__file__).resolve().parent / "golden" / "swift"
BENCHMARK = SWIFT / "benchmark.json"
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


def test_write_report_creates_markdown_and_png(tmp_path):
    written = write_report([BENCHMARK, BENCHMARK], tmp_path / "out")
    assert written.markdown.read_text().count(load_benchmark(BENCHMARK).device_model) == 2
    png = written.plot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


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
