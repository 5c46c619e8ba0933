"""What `eval` writes beside the images (images/w<guidance>/<index>.png, written as they are
drawn): results.json, results.md (a table), sweep.png (score against Frechet distance over the
guidance sweep) and grid.png (rows: guidance values; columns: the first prompts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io import write_json, write_png, write_text
from ..optional import require
from .run import EvalResult


def _score(row: dict) -> tuple[str, float] | None:
    if "judge_accuracy" in row:
        return "judge accuracy (attributes)", row["judge_accuracy"]["attributes"]
    if "clip_score" in row:
        return "CLIP score", row["clip_score"]
    return None


def _distance(row: dict) -> tuple[str, float] | None:
    if "fid" in row:
        return "FID", row["fid"]
    if "judge_fd" in row:
        return "judge FD", row["judge_fd"]
    return None


def markdown(result: EvalResult) -> str:
    """The results as a markdown table, one row per guidance value."""
    rows = result.rows
    columns = [("guidance w", lambda r: f"{r['guidance']:g}")]
    if any("judge_accuracy" in r for r in rows):
        for key, title in (("attributes", "judge accuracy"), ("shape", "shape"), ("color", "color"),
                           ("background", "background"), ("all", "all three")):
            columns.append((title, lambda r, k=key: f"{r['judge_accuracy'][k]:.3f}"))
    for key, title, fmt in (("judge_fd", "judge FD", "{:.3f}"), ("clip_score", "CLIP score", "{:.4f}"),
                            ("fid", "FID", "{:.2f}")):
        if any(key in r for r in rows):
            columns.append((title, lambda r, k=key, f=fmt: f.format(r[k])))
    s = result.settings
    lines = [f"# Quality evaluation: {result.model}", "",
             f"Backend: {result.backend}. Prompts: {result.prompts.source}, {len(result.prompts.texts)} per guidance value, "
             f"image seeds {s.seed}..{s.seed + len(result.prompts.texts) - 1}; steps: {s.steps or 'the model default'}; "
             f"reference images: {result.reference or 'none'}.", ""]
    if result.judge:
        acc = (result.judge.get("held_out_accuracy") or {}).get("attributes")
        held = (result.judge.get("training") or {}).get("held_out_seed")
        if acc is not None:
            lines += [f"Judge accuracy on held-out data set images (seed {held}): {acc:.3f}.", ""]
    lines += ["| " + " | ".join(t for t, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(f(r) for _, f in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_sweep(result: EvalResult, path: Path) -> bool:
    """Score against distance, one point per guidance value; False when either is missing."""
    points = [(_distance(r), _score(r), r["guidance"]) for r in result.rows]
    if any(d is None or s is None for d, s, _ in points):
        return False
    matplotlib = require("matplotlib", "report", "the guidance-sweep plot of eval")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    xs, ys = [d[1] for d, _, _ in points], [s[1] for _, s, _ in points]
    ax.plot(xs, ys, "o-")
    for x, y, (_, _, w) in zip(xs, ys, points):
        ax.annotate(f"w={w:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"{points[0][0][0]} (lower is better)")
    ax.set_ylabel(f"{points[0][1][0]} (higher is better)")
    ax.set_title(f"guidance sweep, {result.backend}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def image_grid(result: EvalResult) -> np.ndarray:
    """(rows * H, columns * W, 3) uint8: one row per guidance value, the images the result kept."""
    return np.concatenate([np.concatenate(result.images[w], axis=1) for w in result.settings.guidance], axis=0)


def write_outputs(result: EvalResult, out: Path) -> list[str]:
    """Write the summaries into the folder `out` (the caller's temporary folder); the file names."""
    out = Path(out)
    written = ["results.json", "results.md", "grid.png"]
    write_png(out / "grid.png", image_grid(result))
    if plot_sweep(result, out / "sweep.png"):
        written.append("sweep.png")
    write_text(out / "results.md", markdown(result))
    data = result.to_dict()
    data["files"] = written + ["images/"]
    write_json(out / "results.json", data)
    return written
