"""Aggregate device benchmark JSON files (docs/contracts.md section 6) into a markdown table and a plot.

The files come from `snapfusion-cli benchmark` or the sample app's Benchmark screen. Measured rows are
set against published figures, which are labelled as published everywhere:
SnapFusion's 1.96 s end to end on iPhone 14 Pro (paper Table 4, with its per-stage numbers) and Apple's
ml-stable-diffusion SD-2.1-base figures (20 steps, end to end excluding load).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError
from .io import check_separate, read_json, temporary_sibling, write_text
from .optional import require

BENCHMARK_FORMAT = "snapfusion-benchmark"
STAGES = ("text_encoder_ms", "unet_step_ms", "decoder_ms", "end_to_end_ms", "peak_memory_bytes")
MARKDOWN_NAME = "report.md"
PLOT_NAME = "report.png"


@dataclass(frozen=True)
class StageSummary:
    mean: float
    p50: float
    p95: float


@dataclass(frozen=True)
class BenchmarkResult:
    """One benchmark file, reduced to what the report shows."""

    source: str
    device_model: str
    os: str
    compute_units: str
    steps: int
    guidance_scale: float
    image_size: int
    unet_batch: int
    cold_load_ms: float
    warm_load_ms: float
    runs: int
    summary: dict[str, StageSummary]  # keyed by STAGES

    @property
    def label(self) -> str:
        return f"{self.device_model} ({self.compute_units})"

    @property
    def unet_total_ms(self) -> float:
        """All UNet steps of one generation at the per-step median."""
        return self.summary["unet_step_ms"].p50 * self.steps


@dataclass(frozen=True)
class PublishedFigure:
    """A number from a paper or a vendor's documentation, never measured by this project."""

    label: str
    end_to_end_ms: float
    text_encoder_ms: float | None = None
    unet_total_ms: float | None = None
    decoder_ms: float | None = None
    steps: int | None = None
    source: str = ""


# SnapFusion paper Tables 1 and 4; Apple's ml-stable-diffusion README (SD-2.1-base, 20 steps).
PUBLISHED = (
    PublishedFigure("SnapFusion, iPhone 14 Pro", 1960.0, text_encoder_ms=8.0, unet_total_ms=1840.0, decoder_ms=116.0,
                    steps=8, source="SnapFusion paper, Tables 1 and 4 (8 steps, CFG)"),
    PublishedFigure("SD-2.1-base, iPhone 14 Pro Max", 7900.0, steps=20,
                    source="Apple ml-stable-diffusion (20 steps, 6-bit, CPU_AND_NE, excl. load)"),
    PublishedFigure("SD-2.1-base, iPhone 14", 8600.0, steps=20, source="Apple ml-stable-diffusion"),
    PublishedFigure("SD-2.1-base, iPhone 13 Pro Max", 10400.0, steps=20, source="Apple ml-stable-diffusion"),
    PublishedFigure("SD-2.1-base, iPad Pro M2", 7000.0, steps=20, source="Apple ml-stable-diffusion"),
)


def load_benchmark(path: Path) -> BenchmarkResult:
    """Read one benchmark JSON; bad input raises UserError naming the file."""
    path = Path(path)
    data = read_json(path, "a benchmark JSON file")
    if data.get("format") != BENCHMARK_FORMAT or data.get("version") != 1:
        got = (data.get("format"), data.get("version"))
        raise UserError(f"expected format {BENCHMARK_FORMAT!r} version 1, got {got!r} (in {path})")
    try:
        env, config, load = data["environment"], data["config"], data["load"]
        summary = {stage: _stage_summary(data["summary"][stage]) for stage in STAGES}
        return BenchmarkResult(
            source=str(path), device_model=str(env["device_model"]), os=str(env["os"]),
            compute_units=str(env["compute_units"]), steps=int(config["steps"]),
            guidance_scale=float(config["guidance_scale"]), image_size=int(config["image_size"]),
            unet_batch=int(config["unet_batch"]), cold_load_ms=float(load["cold_ms"]), warm_load_ms=float(load["warm_ms"]),
            runs=len(data["runs"]), summary=summary,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"malformed benchmark file, missing or invalid {exc} (in {path})") from None


def _stage_summary(data: dict[str, Any]) -> StageSummary:
    return StageSummary(float(data["mean"]), float(data["p50"]), float(data["p95"]))


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def _bytes(value: float) -> str:
    return f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:.0f} MiB"


def markdown_table(results: list[BenchmarkResult]) -> str:
    """Measured rows (p50, with p95 where it matters) followed by the published figures."""
    lines = [
        "| device | OS | compute units | steps | text encoder | UNet / step (p50 / p95) | decoder "
        "| end to end (p50 / p95) | cold / warm load | peak memory | runs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r.summary
        lines.append(
            f"| {r.device_model} | {r.os} | {r.compute_units} | {r.steps} | {_ms(s['text_encoder_ms'].p50)} "
            f"| {_ms(s['unet_step_ms'].p50)} / {_ms(s['unet_step_ms'].p95)} | {_ms(s['decoder_ms'].p50)} "
            f"| {_ms(s['end_to_end_ms'].p50)} / {_ms(s['end_to_end_ms'].p95)} "
            f"| {_ms(r.cold_load_ms)} / {_ms(r.warm_load_ms)} | {_bytes(s['peak_memory_bytes'].p95)} | {r.runs} |"
        )
    lines += ["", "Published figures (not measured here):", "",
              "| published | steps | text encoder | UNet, all steps | decoder | end to end | source |",
              "|---|---|---|---|---|---|---|"]
    for p in PUBLISHED:
        lines.append(f"| {p.label} | {p.steps or '-'} | {_ms(p.text_encoder_ms)} | {_ms(p.unet_total_ms)} "
                     f"| {_ms(p.decoder_ms)} | {_ms(p.end_to_end_ms)} | {p.source} |")
    lines += ["", "Times are medians over the measured runs; end to end excludes model loading and includes "
              "tokenization, text encoding, every UNet step and decoding. Peak memory is the largest p95 footprint."]
    return "\n".join(lines) + "\n"


def plot(results: list[BenchmarkResult], path: Path) -> None:
    """Stacked per-stage bars (text encoder, UNet steps, decoder) with the measured end to end as a
    marker, next to the published figures (hatched, labelled "published")."""
    matplotlib = require("matplotlib", "report", "the benchmark plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: list[tuple[str, float | None, float | None, float | None, float, bool]] = []
    for r in results:
        s = r.summary
        rows.append((f"{r.label}\n{r.steps} steps", s["text_encoder_ms"].p50, r.unet_total_ms, s["decoder_ms"].p50,
                     s["end_to_end_ms"].p50, False))
    for p in PUBLISHED:
        rows.append((f"{p.label}\n(published)", p.text_encoder_ms, p.unet_total_ms, p.decoder_ms, p.end_to_end_ms, True))

    fig, ax = plt.subplots(figsize=(10, 0.55 * len(rows) + 1.8))
    colors = {"text encoder": "#4c72b0", "UNet (all steps)": "#dd8452", "decoder": "#55a868"}
    ys = list(range(len(rows)))[::-1]
    for y, (_, text, unet, decoder, end_to_end, published) in zip(ys, rows):
        hatch = "//" if published else None
        if text is None and unet is None and decoder is None:
            ax.barh(y, end_to_end, color="#bbbbbb", hatch=hatch, edgecolor="white")
        else:
            left = 0.0
            for name, value in zip(colors, (text, unet, decoder)):
                value = value or 0.0
                ax.barh(y, value, left=left, color=colors[name], hatch=hatch, edgecolor="white")
                left += value
        ax.plot([end_to_end], [y], marker="|", markersize=18, color="black")
        ax.text(end_to_end, y, f"  {end_to_end / 1000:.2f} s", va="center", fontsize=8)
    target = ax.axvline(1960.0, color="#c44e52", linestyle="--", linewidth=1)
    ax.set_yticks(ys, [row[0] for row in rows], fontsize=8)
    ax.set_xlabel("milliseconds (p50; black tick: end to end)")
    ax.set_title("Text-to-image latency: measured here vs. published figures (hatched)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    handles += [plt.Rectangle((0, 0), 1, 1, color="#bbbbbb"), target]
    ax.legend(handles, [*colors, "end to end only", "SnapFusion 1.96 s (published)"], loc="lower right", fontsize=8)
    finite = [row[4] for row in rows if math.isfinite(row[4])]
    ax.set_xlim(0, max(finite) * 1.18 if finite else 1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    plot: Path
    results: tuple[BenchmarkResult, ...]


def write_report(files: list[Path], out_dir: Path) -> ReportFiles:
    """Read every benchmark file and write `report.md` and `report.png` into `out_dir`."""
    if not files:
        raise UserError("expected at least one benchmark JSON file, got none")
    require("matplotlib", "report", "the benchmark plot")  # before anything is written
    results = [load_benchmark(Path(f)) for f in files]
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"expected an output folder, got an existing file: {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / MARKDOWN_NAME
    write_text(markdown, "# Device benchmarks\n\n" + markdown_table(results) + f"\n![latency]({PLOT_NAME})\n")
    png = out_dir / PLOT_NAME
    check_separate(png, what="an output file")
    with temporary_sibling(png) as tmp:  # never through a link planted at the name
        plot(results, tmp)
        os.replace(tmp, png)
    return ReportFiles(markdown, png, tuple(results))
