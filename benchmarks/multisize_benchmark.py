"""On-disk size of a 3-size multifunction conversion against a 1-size one, full-size SD-1.5 UNet.

Builds (once) SD-v1.5 at full size with random weights, using convert_memory.py's builder, then
runs `python -m snapfusion_coreml convert MODEL -o OUT --components unet,decoder --palettize unet=6
--target iOS18` twice, each in its own child process: once with `--image-size 512` and once with
`--image-size 512,512x768,768x512` (one function per size, weights shared by save_multifunction).
iOS18 in both, so the palette granularity (one palette per 16 output channels) is the same.
For each child it records wall time, CPU time and peak RSS (from wait4); for each package the
bytes of all its files, of weights/weight.bin and of model.mlmodel (the program text, one function
per size), and the ratio 3-size / 1-size per package and for the whole folder. Then it runs
`python -m snapfusion_coreml verify OUT --json` on the 3-size folder, stopped after
--verify-timeout seconds (reported as skipped then).

    python benchmarks/multisize_benchmark.py [--work /work/runs/sd15-full] [--verify-timeout 330]

Writes benchmarks/results/multisize.json and .md. The load average before and after is recorded:
above the CPU count, other processes shared the CPU and wall times are inflated.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))
SIZES = {"1-size": "512", "3-size": "512,512x768,768x512"}
CONVERT = ["--components", "unet,decoder", "--palettize", "unet=6", "--target", "iOS18", "--overwrite"]


def run_child(args: list[str], log: Path, timeout: float | None = None) -> dict:
    """Run `python -m snapfusion_coreml ARGS` in a child; wall, CPU and peak RSS from wait4."""
    command = [sys.executable, "-m", "snapfusion_coreml", *args]
    env = dict(os.environ, TQDM_DISABLE="1", PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if timeout is not None and time.perf_counter() - start > timeout:
                timed_out = True
                os.kill(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.5)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"command": " ".join(["python", "-m", "snapfusion_coreml", *args]), "exit_code": proc.returncode,
            "timed_out": timed_out, "seconds": round(time.perf_counter() - start, 1),
            "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1), "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2)}


def sizes(package: Path) -> dict:
    """Bytes of every file in the package, of its weight.bin and of its model.mlmodel."""
    files = [p for p in package.rglob("*") if p.is_file()]
    pick = lambda name: sum(p.stat().st_size for p in files if p.name == name)  # noqa: E731
    return {"total_bytes": sum(p.stat().st_size for p in files), "weight_bin_bytes": pick("weight.bin"),
            "model_mlmodel_bytes": pick("model.mlmodel")}


def main() -> None:
    from convert_benchmark import commit, machine
    from convert_memory import build_full_size

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/work/runs/sd15-full"))
    parser.add_argument("--verify-timeout", type=float, default=330.0)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    model = build_full_size(args.work, "sd-v1.5")  # reused when already there

    load_before = os.getloadavg()
    result: dict = {"model": f"{model} (SD-v1.5 full size, random weights, convert_memory.build_full_size)",
                    "command": " ".join(["python", *sys.argv]), "commit": commit(), "machine": machine(),
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runs": {}}
    for name, size in SIZES.items():
        out = args.work / f"out-{name}"
        run = run_child(["convert", str(model), "-o", str(out), "--image-size", size, *CONVERT], args.work / f"{name}.log")
        print(name, json.dumps(run), flush=True)
        if run["exit_code"] != 0:
            run["log_tail"] = (args.work / f"{name}.log").read_text()[-2000:]
        else:
            run["packages"] = {p.name: sizes(p) for p in sorted(out.glob("*.mlpackage"))}
            run["folder_bytes"] = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        result["runs"][name] = run

    one, three = result["runs"]["1-size"], result["runs"]["3-size"]
    if "packages" in one and "packages" in three:
        result["ratios_3_over_1"] = {
            pkg: {k: round(three["packages"][pkg][k] / v, 3) if v else None for k, v in one["packages"][pkg].items()}
            for pkg in one["packages"] if pkg in three["packages"]}
        result["ratios_3_over_1"]["folder"] = round(three["folder_bytes"] / one["folder_bytes"], 3)
        verify = run_child(["verify", str(args.work / "out-3-size"), "--json"], args.work / "verify.log", args.verify_timeout)
        if not verify["timed_out"]:
            text = (args.work / "verify.log").read_text()
            start = text.find("{")
            try:
                verify["report"] = json.loads(text[start:]) if start >= 0 else None
            except json.JSONDecodeError:
                verify["log_tail"] = text[-2000:]
        result["verify_3_size"] = verify
        print("verify", json.dumps({k: v for k, v in verify.items() if k != "report"}), flush=True)
    load_after = os.getloadavg()
    result["load_average"] = {"before": [round(x, 1) for x in load_before], "after": [round(x, 1) for x in load_after]}
    result["cpu_shared_with_other_processes"] = max(load_before[0], load_after[0]) > (os.cpu_count() or 1)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "multisize.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "multisize.md").write_text(summary_markdown(result))
    print(summary_markdown(result))


def summary_markdown(r: dict) -> str:
    mb = lambda b: f"{b / 1e6:.1f}"  # noqa: E731
    m = r["machine"]
    shared = "; other processes shared the CPU (wall times inflated)" if r["cpu_shared_with_other_processes"] else ""
    lines = ["# Multifunction (3 sizes) against one size: full-size SD-1.5", "",
             f"`{r['command']}` at commit `{r['commit']}`, {r['date']}; {m['uname']}, {m['cpus']} CPUs, "
             f"{m['ram_gb']} GiB RAM; load average {r['load_average']['before'][0]} -> {r['load_average']['after'][0]}{shared}.",
             "", f"Model: {r['model']}.", "", "| run | command | wall s | CPU s | peak RSS GiB | folder MB |", "|---|---|---|---|---|---|"]
    for name, run in r["runs"].items():
        folder = mb(run["folder_bytes"]) if "folder_bytes" in run else f"failed (exit {run['exit_code']})"
        lines.append(f"| {name} | `{run['command']}` | {run['seconds']} | {run['cpu_seconds']} | {run['peak_rss_gb']} | {folder} |")
    ratios = r.get("ratios_3_over_1")
    if ratios:
        lines += ["", "Sizes in MB (10^6 bytes), 1-size / 3-size (ratio):", "",
                  "| package | all files | weights/weight.bin | model.mlmodel |", "|---|---|---|---|"]
        for pkg, ratio in ratios.items():
            if pkg == "folder":
                continue
            a, b = r["runs"]["1-size"]["packages"][pkg], r["runs"]["3-size"]["packages"][pkg]
            cells = [f"{mb(a[k])} / {mb(b[k])} ({ratio[k]}x)" for k in ("total_bytes", "weight_bin_bytes", "model_mlmodel_bytes")]
            lines.append(f"| {pkg} | " + " | ".join(cells) + " |")
        lines += ["", f"Whole folder: {ratios['folder']}x.", ""]
        v = r["verify_3_size"]
        if v["timed_out"]:
            lines.append(f"`{v['command']}`: skipped, stopped after {v['seconds']} s (over the time allowed), peak RSS {v['peak_rss_gb']} GiB.")
        else:
            lines.append(f"`{v['command']}`: exit {v['exit_code']} in {v['seconds']} s, peak RSS {v['peak_rss_gb']} GiB "
                         "(report in multisize.json).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
