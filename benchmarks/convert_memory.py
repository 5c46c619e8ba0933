"""Wall time, CPU time and peak RSS per conversion stage (open, text encoder, UNet, decoder).

Two jobs:
  main       the README main job: the bundled models/default, --palettize text_encoder=8,unet=6;
  full-size  SD-v1.5 at full size with random weights built locally (CLIP ViT-L/14 text encoder,
             860M UNet, full decoder), split einsum, 6-bit k-means text encoder and UNet, fp16
             decoder: the job Apple's ml-stable-diffusion torch2coreml runs.

Each conversion runs in its own child process (`--child`), which calls convert_pipeline and
samples its own RSS every 20 ms from a thread; per stage it records wall time, CPU time (user +
sys, all threads) and the largest RSS seen. The parent reads the child's peak RSS from wait4.
The full-size model is built and saved by a separate process first, so its memory is not counted.

    python benchmarks/convert_memory.py [--jobs main,full-size] [--work /tmp/sf-mem]

Writes benchmarks/results/convert_memory.json and .md. The load average before and after each
job is recorded: above the CPU count, other processes shared the CPU and wall times are inflated
(CPU times are not).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))
# Measured earlier on this machine kind (2 cores, 24 GB): Apple's ml-stable-diffusion torch2coreml
# and this project before lean loading, on the full-size job. Not re-measured by this script.
REFERENCE = {"apple_torch2coreml": {"seconds": 16 * 60 + 35, "peak_rss_gb": 9.02},
             "ours_before": {"seconds": 6 * 60 + 13, "peak_rss_gb": 9.85}}
TARGETS = {"full_size_peak_rss_vs_apple": 0.7, "full_size_seconds_vs_apple": 0.5, "main_job_seconds": 20.0}
JOBS = {
    "main": {"model": None, "palettize": "text_encoder=8,unet=6"},
    "full-size": {"model": "sd-v1.5", "palettize": "6"},
}


def child(model: str, out: str, palettize: str, result_path: str) -> None:
    """Run one conversion in this process, recording every stage; write the record as JSON."""
    import psutil

    from snapfusion_coreml.convert import ConvertOptions, convert_pipeline, parse_palettize
    from snapfusion_coreml.memory import unmap_large_allocations

    process = psutil.Process()
    stages: list[dict] = []
    current = {"name": "open", "start": time.perf_counter(), "cpu": _cpu(), "peak": process.memory_info().rss}
    lock, done = threading.Lock(), threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss = process.memory_info().rss
            with lock:
                current["peak"] = max(current["peak"], rss)
            time.sleep(0.02)

    def next_stage(name: str) -> None:
        with lock:
            rss = process.memory_info().rss
            current["peak"] = max(current["peak"], rss)
            stages.append({"stage": current["name"], "seconds": round(time.perf_counter() - current["start"], 2),
                           "cpu_seconds": round(_cpu() - current["cpu"], 2), "peak_rss_gb": round(current["peak"] / 2**30, 2)})
            current.update(name=name, start=time.perf_counter(), cpu=_cpu(), peak=rss)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    compression, per_component = parse_palettize(palettize, "kmeans")
    options = ConvertOptions(out=Path(out), compression=compression, component_compression=per_component, overwrite=True)
    start = time.perf_counter()
    unmap_large_allocations()  # as `snapfusion-coreml convert` does for its process
    summary = convert_pipeline(model, options, lambda key, event: next_stage(key if event == "start" else "write"))
    next_stage("end")
    done.set()
    thread.join()
    record = {"stages": stages, "seconds": round(time.perf_counter() - start, 2),
              "sizes_mb": {r.key: round(r.size_bytes / 1e6, 1) for r in summary.results}}
    Path(result_path).write_text(json.dumps(record))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def build_full_size(work: Path, layout: str) -> Path:
    """Save a random-weight full-size pipeline (in a separate process) and return its folder."""
    folder = work / layout
    if not (folder / "model_index.json").is_file():
        code = ("from snapfusion_coreml.modeling.factory import build_full_size_pipeline as b;"
                "from snapfusion_coreml.modeling.loading import save_pipeline as s;"
                f"s(b({layout!r}), {str(folder)!r}, overwrite=True)")
        subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return folder


def run_job(name: str, work: Path) -> dict:
    job = JOBS[name]
    model = str(ROOT / "models" / "default") if job["model"] is None else str(build_full_size(work, job["model"]))
    out, record = work / f"out-{name}", work / f"record-{name}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", model, str(out), job["palettize"], str(record)]
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=dict(os.environ, TQDM_DISABLE="1", PYTHONPATH=str(ROOT)))
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed")
    result = json.loads(record.read_text())
    load_after = os.getloadavg()
    label = "models/default (bundled)" if job["model"] is None else f"{job['model']} built in WORK by this script"
    return {"model": label, "palettize": job["palettize"], "process_seconds": round(seconds, 1),
            "process_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2), **result,
            "load_average": {"before": [round(x, 1) for x in load_before], "after": [round(x, 1) for x in load_after]},
            "cpu_shared_with_other_processes": max(load_before[0], load_after[0]) > (os.cpu_count() or 1)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(*sys.argv[2:6])
    from convert_benchmark import commit, machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="main,full-size")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sf-mem"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "convert_memory.json"
    result = json.loads(path.read_text()) if path.is_file() else {"jobs": {}}
    result.update(reference=REFERENCE, targets=TARGETS)
    for name in (j.strip() for j in args.jobs.split(",") if j.strip()):
        record = run_job(name, args.work)
        record.update(command=" ".join([Path(sys.executable).name, *sys.argv]), commit=commit(), machine=machine(),
                      date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        result["jobs"][name] = record
        print(name, json.dumps(record), flush=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / "convert_memory.md").write_text(summary_markdown(result))
    print(summary_markdown(result))


def summary_markdown(r: dict) -> str:
    lines = ["# Conversion time and memory per stage", ""]
    for name, job in r["jobs"].items():
        shared = "; other processes shared the CPU (wall times inflated, CPU times not)" if job["cpu_shared_with_other_processes"] else ""
        lines += [f"## {name}", "", f"`{job['command']}` at commit `{job['commit']}`, {job['date']}; "
                  f"{job['machine']['cpus']} CPUs, {job['machine']['ram_gb']} GB RAM; load average "
                  f"{job['load_average']['before'][0]} -> {job['load_average']['after'][0]}{shared}.", "",
                  f"Model `{job['model']}`, `--palettize {job['palettize']}`: {job['process_seconds']} s wall, "
                  f"{job['process_cpu_seconds']} s CPU, peak RSS {job['peak_rss_gb']} GB; sizes {job['sizes_mb']} MB.", "",
                  "| stage | wall s | CPU s | peak RSS GB |", "|---|---|---|---|"]
        lines += [f"| {s['stage']} | {s['seconds']} | {s['cpu_seconds']} | {s['peak_rss_gb']} |" for s in job["stages"]]
        lines.append("")
    full = r["jobs"].get("full-size")
    if full:
        apple = r["reference"]["apple_torch2coreml"]
        lines += [f"Full size against Apple's torch2coreml ({apple['seconds']} s, {apple['peak_rss_gb']} GB, measured "
                  f"earlier on this machine kind): peak RSS {full['peak_rss_gb'] / apple['peak_rss_gb']:.2f}x "
                  f"(target <= {r['targets']['full_size_peak_rss_vs_apple']}), wall {full['process_seconds'] / apple['seconds']:.2f}x "
                  f"(target <= {r['targets']['full_size_seconds_vs_apple']}).", "",
                  f"RSS figures are in units of 2^30 bytes; in 10^9 bytes the full-size peak is "
                  f"{full['peak_rss_gb'] * 2**30 / 1e9:.2f}, {full['peak_rss_gb'] * 2**30 / 1e9 / apple['peak_rss_gb']:.2f}x "
                  f"of the reference should that have been read in 10^9 bytes.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
