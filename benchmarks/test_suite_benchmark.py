"""How long the Python test suite takes on a fresh clone (a benchmark, not a test).

    python benchmarks/test_suite_benchmark.py --label after [--ref HEAD] [--workers 2] [-m "not slow"]
    python benchmarks/test_suite_benchmark.py --label before --ref b548108 --workers 0

Clones commit REF of this checkout into a temporary folder (what CI starts from), runs pytest there
with this environment's interpreter, as `scripts/test.sh` does (`-n WORKERS --dist loadgroup`;
--workers 0 runs every test in one process, as the suite ran before it used pytest-xdist), and
records the wall time, exit code, test counts, the 20 slowest tests (setup, call and teardown
summed, from pytest's junit XML), the load average before and after, machine, commit and date.
Each run is stored under its label in benchmarks/results/test_suite.json (other labels kept), and
benchmarks/results/test_suite.md is written from all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from verify_benchmark import machine  # noqa: E402  (the shared machine description)


def slowest(junit: Path, count: int = 20) -> tuple[list[dict], dict[str, int]]:
    """The `count` slowest tests of a junit XML file, and its totals."""
    seconds: dict[str, float] = defaultdict(float)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in ET.parse(junit).getroot().iter("testsuite"):
        for key in totals:
            totals[key] += int(suite.get(key, 0))
        for case in suite.iter("testcase"):
            seconds[f"{case.get('classname')}::{case.get('name')}"] += float(case.get("time", 0))
    ranked = sorted(seconds.items(), key=lambda item: -item[1])[:count]
    return [{"test": name, "seconds": round(s, 2)} for name, s in ranked], totals


def run(ref: str, workers: int, marker: str | None) -> dict:
    commit = subprocess.check_output(["git", "rev-parse", ref], cwd=ROOT, text=True).strip()
    with tempfile.TemporaryDirectory(prefix="suite-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        subprocess.run(["git", "checkout", "--quiet", commit], cwd=clone, check=True)
        junit = Path(tmp) / "junit.xml"
        options = ["-n", str(workers), "--dist", "loadgroup", *(["-m", marker] if marker else [])]
        argv = [sys.executable, "-m", "pytest", *options, "-p", "no:cacheprovider", f"--junitxml={junit}"]
        load_before = os.getloadavg()
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=clone, env=dict(os.environ, PYTHONPATH=str(clone)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        load_after = os.getloadavg()
        tests, totals = slowest(junit) if junit.exists() else ([], {})
    return {"command": shlex.join(["python", "-m", "pytest", *options]),
            "commit": commit, "workers": workers, "marker": marker, "wall_s": round(wall, 1),
            "exit_code": done.returncode, "totals": totals, "slowest": tests,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine()}


def summary(results: dict) -> str:
    lines = ["# Test-suite time", "",
             "The Python tests (`pytest`) on a fresh clone of the named commit, run by "
             "`benchmarks/test_suite_benchmark.py` with the same environment; wall time of one run.", "",
             "| label | commit | workers | selection | wall | tests (failed, skipped) | load average before -> after |",
             "|---|---|---|---|---|---|---|"]
    for label, r in results.items():
        t = r["totals"]
        load = (f"{r['load_average_before'][0]} -> {r['load_average_after'][0]}" if r.get("load_average_before")
                else "not recorded")
        lines.append(f"| {label} | {r['commit'][:10]} | {r['workers']} | {r['marker'] or 'all'} | "
                     f"{r['wall_s'] / 60:.1f} min | {t.get('tests', 0)} ({t.get('failures', 0) + t.get('errors', 0)}, "
                     f"{t.get('skipped', 0)}) | {load} |")
    for label, r in results.items():
        if r.get("source"):  # a run this script did not make, recorded with where its figures come from
            lines += ["", f"{label}: {r['source']}"]
    for label, r in results.items():
        if r["slowest"]:
            lines += ["", f"## Slowest 20: {label}", "", f"`{r['command']}`", "", "| seconds | test |", "|---|---|"]
            lines += [f"| {t['seconds']:.1f} | `{t['test']}` |" for t in r["slowest"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True)
    parser.add_argument("--ref", default="HEAD")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("-m", dest="marker", default=None, help="a pytest marker expression, e.g. 'not slow'")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "test_suite.json")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results[args.label] = run(args.ref, args.workers, args.marker)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(summary(results))
    print(summary(results))


if __name__ == "__main__":
    main()
