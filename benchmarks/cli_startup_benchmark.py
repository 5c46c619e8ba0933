"""How fast the command line answers when no model needs loading (a benchmark, not a test).

    python benchmarks/cli_startup_benchmark.py [--runs 5] [--code CHECKOUT] [--out benchmarks/results/cli_startup.json]

Times, as a CI job sees them (a fresh `python -m snapfusion_coreml` process each run, wall clock
and CPU time, median of --runs), `--help`, `--version` and bad input that must be refused before any model
loads (README "Exit codes and scripting": well under a second), next to `python -c "import torch"`,
the cost every one of them used to pay. Each case's exit code is recorded too. --code runs another
checkout's package (e.g. an older commit) for a before/after comparison.
Writes JSON (command, machine, commit, date, numbers) and a short markdown summary beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from verify_benchmark import git_commit, machine  # noqa: E402  (the shared machine description)


def cases(work: Path) -> dict[str, list[str]]:
    model = str(ROOT / "models" / "default")
    existing = work / "existing"
    existing.mkdir(exist_ok=True)
    cli = [sys.executable, "-m", "snapfusion_coreml"]
    return {
        "import torch (reference)": [sys.executable, "-c", "import torch"],
        "--help": [*cli, "--help"],
        "--version": [*cli, "--version"],
        "convert --help": [*cli, "convert", "--help"],
        "generate --steps 0": [*cli, "generate", model, "--prompt", "a fox", "-o", str(work / "a.png"), "--steps", "0"],
        "generate --seed 2**70": [*cli, "generate", model, "--prompt", "a fox", "-o", str(work / "a.png"),
                                  "--seed", str(2**70)],
        "verify --min-psnr nan": [*cli, "verify", str(existing), "--min-psnr", "nan"],
        "convert nothere/model": [*cli, "convert", "nothere/model", "-o", str(work / "o")],
        "convert to an existing OUT": [*cli, "convert", model, "-o", str(existing)],
        "convert --image-size 0": [*cli, "convert", model, "-o", str(work / "o"), "--image-size", "0"],
        "convert --image-size 100 (the UNet cannot take it)": [*cli, "convert", model, "-o", str(work / "o"),
                                                                "--image-size", "100"],
        "convert --palettize 7": [*cli, "convert", model, "-o", str(work / "o"), "--palettize", "7"],
        "convert --components unet,vae": [*cli, "convert", model, "-o", str(work / "o"), "--components", "unet,vae"],
        "eval --steps 0": [*cli, "eval", model, "-o", str(work / "e"), "--steps", "0"],
    }


def time_case(argv: list[str], runs: int, cwd: Path, code: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code))
    seconds, cpu, codes = [], [], set()
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
        seconds.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        codes.add(done.returncode)
    return {"median_s": round(statistics.median(seconds), 3), "runs_s": [round(s, 3) for s in seconds],
            "median_cpu_s": round(statistics.median(cpu), 3), "exit_codes": sorted(codes)}


def summary(r: dict) -> str:
    lines = ["# CLI startup benchmark", "",
             f"`{r['command']}` on {r['machine']['uname']} ({r['machine']['cpu_count']} CPUs, shared with other jobs), "
             f"commit {r['git_commit'][:12]}, {r['date']}; median wall and CPU (user + system) time of {r['runs']} "
             f"fresh processes; wall time depends on the other jobs' load, CPU time much less.", "",
             "| case | median wall (s) | median CPU (s) | exit code |", "|---|---|---|---|"]
    for name, c in r["cases"].items():
        lines.append(f"| {name} | {c['median_s']:.2f} | {c['median_cpu_s']:.2f} | {', '.join(map(str, c['exit_codes']))} |")
    lines += ["", "Target: bad input refused in well under a second, and faster than importing torch."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose snapfusion_coreml runs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "cli_startup.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = {name: time_case(argv, args.runs, work, args.code) for name, argv in cases(work).items()}
    result = {"format": "snapfusion-cli-startup-benchmark", "version": 1,
              "command": "python benchmarks/cli_startup_benchmark.py" + "".join(f" {a}" for a in sys.argv[1:]),
              "machine": machine(), "git_commit": git_commit(),
              "code": str(args.code.resolve()), "code_commit": subprocess.run(
                  ["git", "rev-parse", "HEAD"], cwd=args.code, capture_output=True, text=True).stdout.strip(),
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "runs": args.runs, "cases": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(summary(result))
    print(summary(result))


if __name__ == "__main__":
    main()
