"""Aggregate device benchmark JSON files (docs/contracts.md section 6) into a markdown table and a plot.

The files come from `snapfusion-cli benchmark` or the sample app's Benchmark screen (format versions 1
and 2). Measured rows are set against published figures, which are labelled as published everywhere:
SnapFusion's 1.96 s end to end on iPhone 14 Pro (paper Table 4, with its per-stage numbers) and Apple's
ml-stable-diffusion SD-2.1-base figures (20 steps, end to end excluding load). `latency estimate --json`
output can be put next to the device numbers; the report says where device, steps, size or batch differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..io import atomic_file, write_text
from ..json_fields import read_json
from ..optional import require

BENCHMARK_FORMAT = "snapfusion-benchmark"
BENCHMARK_VERSIONS = (1, 2)
THERMAL_ORDER = ("nominal", "fair", "serious", "critical")
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
    version: int = 1
    reduce_memory: bool = False
    build_configuration: str | None = None  # "release" / "debug"; None in version 1
    thermal_state: str | None = None  # the hottest state any measured run ended in; None when not recorded
    fallbacks: tuple[str, ...] = ()  # "unet: cpuAndGPU" for each component that ran on other units than asked

    @property
    def label(self) -> str:
        return f"{self.device_model} ({self.compute_units})"

    @property
    def stage_times_include_loads(self) -> bool:
        """Reduce-memory mode loads the UNet and decoder inside their stages (both format versions)."""
        return self.reduce_memory

    def notes(self) -> list[str]:
        """What a reader must know before comparing this row with others."""
        notes = []
        if self.fallbacks:
            notes.append("ran on " + ", ".join(self.fallbacks) + " after NaN")
        if self.build_configuration == "debug":
            notes.append("debug build (tensor conversion ~20x slower)")
        if self.thermal_state in ("serious", "critical"):
            notes.append(f"throttled (thermal state {self.thermal_state})")
        if self.stage_times_include_loads:
            notes.append("reduce memory: stage times include loads")
        if self.version == 1:
            notes.append("format 1: cold load not measured after unloading, peak memory is the process's")
        return notes

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
    """Read one benchmark JSON (format version 1 or 2); bad input raises UserError naming the file."""
    path = Path(path)
    data = read_json(path, "a benchmark JSON file")
    if data.get("format") != BENCHMARK_FORMAT or data.get("version") not in BENCHMARK_VERSIONS:
        got = (data.get("format"), data.get("version"))
        raise UserError(f"expected format {BENCHMARK_FORMAT!r} version 1 or 2, got {got!r} (in {path})")
    try:
        env, config, load = data["environment"], data["config"], data["load"]
        summary = {stage: _stage_summary(data["summary"][stage]) for stage in STAGES}
        runs = data["runs"]
        # Core AI (environment.runtime "coreai") places work itself: the runtime is what was asked for
        requested = "Core AI" if env.get("runtime") == "coreai" else str(env["compute_units"])
        return BenchmarkResult(
            source=str(path), device_model=str(env["device_model"]), os=str(env["os"]),
            compute_units=requested, steps=int(config["steps"]),
            guidance_scale=float(config["guidance_scale"]), image_size=int(config["image_size"]),
            unet_batch=int(config["unet_batch"]), cold_load_ms=float(load["cold_ms"]), warm_load_ms=float(load["warm_ms"]),
            runs=len(runs), summary=summary, version=int(data["version"]),
            reduce_memory=bool(config.get("reduce_memory", False)),
            build_configuration=env.get("build_configuration"),
            thermal_state=_hottest(runs), fallbacks=_fallbacks(runs, requested),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"malformed benchmark file, missing or invalid {exc} (in {path})") from None


def _hottest(runs: list[dict[str, Any]]) -> str | None:
    states = [str(r["thermal_state"]["end"]) for r in runs if isinstance(r.get("thermal_state"), dict)]
    known = [s for s in states if s in THERMAL_ORDER]
    if known:
        return max(known, key=THERMAL_ORDER.index)
    return states[0] if states else None


def _fallbacks(runs: list[dict[str, Any]], requested: str) -> tuple[str, ...]:
    moved: dict[str, str] = {}
    for run in runs:
        for component, units in (run.get("compute_units") or {}).items():
            if units is not None and units != requested:
                moved[component] = str(units)
    return tuple(f"{component}: {units}" for component, units in sorted(moved.items()))


@dataclass(frozen=True)
class LatencyEstimate:
    """`snapfusion-coreml latency estimate --json`: the cost model's numbers, never a measurement."""

    source: str
    layout: str
    device_model: str
    steps: int
    image_size: int
    unet_batch: int
    text_encoder_ms: float  # one prompt
    text_encoder_runs: int
    unet_step_ms: float
    decoder_ms: float
    end_to_end_ms: float


# Output of `latency estimate --json` before it recorded them: the cost model's calibration device
# and the guidance batch it always assumed.
ESTIMATE_DEFAULT_DEVICE = "iPhone15,2"
ESTIMATE_DEFAULT_BATCH = 2


def load_estimate(path: Path) -> LatencyEstimate:
    """Read the JSON printed by `latency estimate --json`; bad input raises UserError naming the file."""
    path = Path(path)
    data = read_json(path, "a latency estimate JSON file")
    if data.get("estimated") is not True:
        raise UserError(f"expected the output of `snapfusion-coreml latency estimate --json` (\"estimated\": true) (in {path})")
    try:
        return LatencyEstimate(
            source=str(path), layout=str(data["layout"]),
            device_model=str(data.get("device_model", ESTIMATE_DEFAULT_DEVICE)), steps=int(data["steps"]),
            image_size=int(data["image_size"]), unet_batch=int(data.get("unet_batch", ESTIMATE_DEFAULT_BATCH)),
            text_encoder_ms=float(data["text_encoder_ms"]), text_encoder_runs=int(data["text_encoder_runs"]),
            unet_step_ms=float(data["unet_step_ms"]), decoder_ms=float(data["decoder_ms"]),
            end_to_end_ms=float(data["end_to_end_ms"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"malformed latency estimate, missing or invalid {exc} (in {path})") from None


def differences(estimate: LatencyEstimate, result: BenchmarkResult) -> list[str]:
    """Where an estimate and a device benchmark do not describe the same run (empty: comparable)."""
    pairs = (("device", estimate.device_model, result.device_model), ("steps", estimate.steps, result.steps),
             ("image size", estimate.image_size, result.image_size), ("UNet batch", estimate.unet_batch, result.unet_batch))
    return [f"{name} {est} (estimate) vs {dev} (device)" for name, est, dev in pairs if est != dev]


def comparison_table(estimates: list[LatencyEstimate], results: list[BenchmarkResult]) -> str:
    """Each estimate next to each device benchmark: UNet per step and end to end, with the ratio of
    measured to estimated, and what differs when the two do not describe the same run."""
    lines = ["| estimate | device benchmark | UNet / step: estimated / measured | end to end: estimated / measured "
             "| measured / estimated | comparable |",
             "|---|---|---|---|---|---|"]
    for e in estimates:
        for r in results:
            measured = r.summary["end_to_end_ms"].p50
            ratio = f"{measured / e.end_to_end_ms:.2f}x" if e.end_to_end_ms > 0 else "-"
            diff = differences(e, r)
            lines.append(f"| {e.layout}, {e.device_model}, {e.steps} steps, {e.image_size} px | {r.label}, {r.steps} steps, "
                         f"{r.image_size} px | {_ms(e.unet_step_ms)} / {_ms(r.summary['unet_step_ms'].p50)} "
                         f"| {_ms(e.end_to_end_ms)} / {_ms(measured)} | {ratio} "
                         f"| {'yes' if not diff else 'no: ' + '; '.join(diff)} |")
    return "\n".join(lines) + "\n"


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
        "| end to end (p50 / p95) | cold / warm load | peak memory | runs | thermal | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r.summary
        lines.append(
            f"| {r.device_model} | {r.os} | {r.compute_units} | {r.steps} | {_ms(s['text_encoder_ms'].p50)} "
            f"| {_ms(s['unet_step_ms'].p50)} / {_ms(s['unet_step_ms'].p95)} | {_ms(s['decoder_ms'].p50)} "
            f"| {_ms(s['end_to_end_ms'].p50)} / {_ms(s['end_to_end_ms'].p95)} "
            f"| {_ms(r.cold_load_ms)} / {_ms(r.warm_load_ms)} | {_bytes(s['peak_memory_bytes'].p95)} | {r.runs} "
            f"| {r.thermal_state or '-'} | {'; '.join(r.notes()) or '-'} |"
        )
    lines += ["", "Published figures (not measured here):", "",
              "| published | steps | text encoder | UNet, all steps | decoder | end to end | source |",
              "|---|---|---|---|---|---|---|"]
    for p in PUBLISHED:
        lines.append(f"| {p.label} | {p.steps or '-'} | {_ms(p.text_encoder_ms)} | {_ms(p.unet_total_ms)} "
                     f"| {_ms(p.decoder_ms)} | {_ms(p.end_to_end_ms)} | {p.source} |")
    lines += ["", "Times are medians over the measured runs; end to end excludes model loading and includes "
              "tokenization, text encoding, every UNet step and decoding. Peak memory is the p95 over runs of each run's "
              "peak footprint. Thermal is the hottest state a measured run ended in."]
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
    estimates: tuple[LatencyEstimate, ...] = ()


def write_report(files: list[Path], out_dir: Path, estimates: list[Path] | None = None) -> ReportFiles:
    """Read every benchmark file (and `latency estimate --json` files to compare with) and write
    `report.md` and `report.png` into `out_dir`."""
    if not files:
        raise UserError("expected at least one benchmark JSON file, got none")
    require("matplotlib", "report", "the benchmark plot")  # before anything is written
    results = [load_benchmark(Path(f)) for f in files]
    estimated = [load_estimate(Path(f)) for f in estimates or []]
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"expected an output folder, got an existing file: {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / MARKDOWN_NAME
    text = "# Device benchmarks\n\n" + markdown_table(results)
    if estimated:
        text += ("\n## Cost-model estimate vs device\n\n" + comparison_table(estimated, results)
                 + "\nEstimates come from `snapfusion-coreml latency estimate` (a cost model, not a measurement); "
                 "rows marked comparable describe the same device, steps, image size and UNet batch.\n")
    write_text(markdown, text + f"\n![latency]({PLOT_NAME})\n")
    png = out_dir / PLOT_NAME
    with atomic_file(png) as tmp:  # never through a link planted at the name
        plot(results, tmp)
    return ReportFiles(markdown, png, tuple(results), tuple(estimated))
