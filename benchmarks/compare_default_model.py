"""The paper's comparison in miniature on the bundled default model's training run.

Rows: the 50-step teacher, 8-step DDIM on the teacher, the 8-step vanilla-distilled student, the
8-step CFG-aware student, that student with the slim decoder, the bundled model (that student in
fp16), and the bundled model's converted packages (6-bit UNet / mixed-bit), judged by `snapfusion-coreml eval`
(attribute judge, Frechet distance of judge features) at one guidance scale on held-out prompts
(shapes:3) and image seeds, plus parameters and the PyTorch CPU time of one UNet step (batch 2,
one thread, median of 20 after 3 warm-ups).

    python benchmarks/compare_default_model.py --work runs/default-model --judge models/judge \
        [--packages out/default-6bit out/default-mixed] [--count 64] [--guidance 3] [--note TEXT ...]

Writes benchmarks/results/default_model_comparison.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def unet_step_ms(model: Path) -> tuple[float, dict[str, int]]:
    """Median PyTorch CPU time of one batch-2 UNet call, and parameter counts per component."""
    import torch

    from snapfusion_coreml.modeling.attention import AttentionImpl
    from snapfusion_coreml.modeling.loading import load_pipeline

    torch.set_num_threads(1)
    pipeline = load_pipeline(model, attention=AttentionImpl.ORIGINAL)
    side = pipeline.defaults.image_size // 8
    z = torch.randn(2, pipeline.unet.layout.in_channels, side, side)
    t = torch.full((2,), 500.0)
    context = torch.randn(2, pipeline.unet.layout.cross_attention_dim, 1, 77)
    times = []
    with torch.no_grad():
        for i in range(23):
            tic = time.perf_counter()
            pipeline.unet(z, t, context)
            if i >= 3:
                times.append((time.perf_counter() - tic) * 1000)
    params = {name: sum(p.numel() for p in getattr(pipeline, name).parameters())
              for name in ("text_encoder", "unet", "decoder")}
    return statistics.median(times), params


def shown(path: Path) -> str:
    """A path as recorded in the results: relative to the checkout when inside it."""
    absolute = Path(path).absolute()
    return str(absolute.relative_to(ROOT)) if absolute.is_relative_to(ROOT) else str(path)


def evaluate(model: Path, steps: int, guidance: float, count: int, judge: Path, out: Path) -> dict:
    cmd = [sys.executable, "-m", "snapfusion_coreml", "eval", "run", shown(model), "-o", str(out), "--judge", shown(judge),
           "--count", str(count), "--guidance", str(guidance), "--steps", str(steps), "--overwrite"]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    result = json.loads((out / "results.json").read_text())["results"][0]
    return {"accuracy": result["judge_accuracy"], "judge_fd": result["judge_fd"], "command": " ".join(cmd[2:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "default-model")
    parser.add_argument("--bundled", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--judge", type=Path, default=ROOT / "models" / "judge")
    parser.add_argument("--packages", type=Path, nargs="*", default=[], help="converted folders of the bundled model")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--note", action="append", default=[], help="a paragraph for the markdown (repeatable)")
    args = parser.parse_args()
    rows = [("50-step teacher (sd-v1.5-tiny, v-pred)", args.work / "teacher-v", 50),
            ("8-step DDIM on the teacher", args.work / "teacher-v", 8),
            ("8-step vanilla-distilled student (snapfusion-tiny)", args.work / "student-vanilla", 8),
            ("8-step CFG-aware student (snapfusion-tiny)", args.work / "student-cfg", 8),
            ("CFG-aware student + slim decoder (0.5 width)", args.work / "student-slim", 8),
            ("bundled models/default (CFG-aware student, fp16)", args.bundled, 8)]
    rows += [(f"converted: {p.name}", p, 8) for p in args.packages]
    report = {"command": "python benchmarks/compare_default_model.py " + shlex.join(sys.argv[1:]),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip(),
              "guidance": args.guidance, "count": args.count, "prompts": "shapes:3 (held out), image seeds 0..count-1",
              "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, model, steps) in enumerate(rows):
            row = {"name": name, "model": shown(model), "steps": steps,
                   **evaluate(model, steps, args.guidance, args.count, args.judge, Path(tmp) / f"e{i}")}
            if (model / "model_index.json").is_file():
                ms, params = unet_step_ms(model)
                row.update(unet_step_ms=round(ms, 2), generation_unet_ms=round(ms * steps, 1), parameters=params)
            report["rows"].append(row)
            print(f"{name}: {row['accuracy']['attributes']:.3f}", flush=True)
    report["notes"] = args.note
    out = ROOT / "benchmarks" / "results" / "default_model_comparison"
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    """default_model_comparison.md from its JSON record (the notes as paragraphs under the table)."""
    words = shlex.split(report["command"])
    command = shlex.join(w for i, w in enumerate(words) if "--note" not in (w, words[i - 1] if i else None))
    lines = ["# The paper's comparison in miniature (bundled default model)", "",
             f"`{command}` (notes below) at guidance {report['guidance']}, {report['count']} held-out prompts "
             f"(shapes:3) and image seeds; commit {report['commit'][:10]}; {report['machine']['cpus']} shared CPU cores.", "",
             "| model | steps | judge accuracy | shape | color | background | all three | judge FD | UNet step (ms, batch 2, 1 thread) | UNet ms per image | UNet params |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        a = r["accuracy"]
        lines.append(f"| {r['name']} | {r['steps']} | {a['attributes']:.3f} | {a['shape']:.3f} | {a['color']:.3f} | "
                     f"{a['background']:.3f} | {a['all']:.3f} | {r['judge_fd']:.1f} | {r.get('unet_step_ms', '-')} | "
                     f"{r.get('generation_unet_ms', '-')} | {r.get('parameters', {}).get('unet', '-')} |")
    for note in report.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
