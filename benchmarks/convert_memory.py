"""Wall time, CPU time and peak RSS per conversion stage, over several runs (min, median, max).

Jobs:
  main           the README main job: the bundled models/default, --palettize text_encoder=8,unet=6;
  full-size      SD-v1.5 at full size with random weights, saved by this project (its own folder
                 format: unet/layout.json, vae_decoder/), built in WORK;
  full-size-hub  the same architecture saved the way Hub checkpoints are, by diffusers and
                 transformers themselves, fp32 and `.fp16` variants side by side (hub_folder.py);
both full-size jobs convert what Apple's ml-stable-diffusion torch2coreml converts: text encoder,
UNet (split einsum) and VAE decoder, 6-bit k-means on the text encoder and the UNet.

Each run is a child process (`--child`) calling convert_pipeline, with a thread sampling its RSS
every 20 ms; per stage it records wall time, CPU time (user + sys, all threads) and the largest RSS
seen; the parent reads the child's peak RSS from wait4. Every run's package sha256s must agree
(reproducible output); with `--before REV` one more conversion per job runs the code of commit REV
(a git worktree in WORK) and its sha256s are compared with these: the packages before and after a
change, byte for byte. Model folders are built by separate processes first (not counted).

    python benchmarks/convert_memory.py [--jobs main,full-size,full-size-hub] [--runs 3] [--before REV] [--work /tmp/sf-mem]

Writes benchmarks/results/convert_memory.json and .md. The load average before and after each run
is recorded: above the CPU count, other processes shared the CPU and wall times are inflated (CPU
times are not).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))
# Apple's ml-stable-diffusion torch2coreml on the Hub-layout folder (TE + UNet + decoder, split einsum,
# 6-bit k-means), measured on this machine kind; not re-measured by this script.
REFERENCE = {"apple_torch2coreml": {"seconds": 14 * 60 + 45, "peak_rss_gb": 8.64}}
TARGETS = {"full_size_peak_rss_vs_apple": 0.5, "full_size_seconds_vs_apple": 0.1, "main_job_seconds": 20.0}
FULL = "text_encoder,unet,decoder"
JOBS = {
    "main": {"model": None, "palettize": "text_encoder=8,unet=6", "components": None},
    "full-size": {"model": "sd-v1.5", "palettize": "6", "components": FULL},
    "full-size-hub": {"model": "hub", "palettize": "6", "components": FULL},
}


def child(model: str, out: str, palettize: str, components: str, result_path: str) -> None:
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
    extra = {"components": tuple(components.split(","))} if components != "default" else {}
    options = ConvertOptions(out=Path(out), compression=compression, component_compression=per_component,
                             overwrite=True, **extra)
    start = time.perf_counter()
    unmap_large_allocations()  # as `snapfusion-coreml convert` does for its process
    summary = convert_pipeline(model, options, lambda key, event: next_stage(key if event == "start" else "write"))
    next_stage("end")
    done.set()
    thread.join()
    record = {"stages": stages, "seconds": round(time.perf_counter() - start, 2),
              "sizes_mb": {r.key: round(r.size_bytes / 1e6, 1) for r in summary.results},
              "sha256": {r.key: r.sha256 for r in summary.results}}
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


def model_folder(job: dict, work: Path) -> tuple[Path, str]:
    """(the job's model folder, how it was made)."""
    from hub_folder import build_hub_folder

    if job["model"] is None:
        return ROOT / "models" / "default", "models/default (bundled)"
    if job["model"] == "hub":
        return build_hub_folder(work), "SD-v1.5 in the Hub layout, saved by diffusers/transformers (hub_folder.py), built in WORK"
    return build_full_size(work, job["model"]), f"{job['model']} in this project's format, built in WORK by this script"


def run_once(job: dict, model: Path, work: Path, name: str, code_root: Path = ROOT) -> dict:
    """One conversion in a child process (the code under code_root); its record with wait4's figures."""
    out, record = work / f"out-{name}", work / f"record-{name}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(model), str(out), job["palettize"],
               job["components"] or "default", str(record)]
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=dict(os.environ, TQDM_DISABLE="1", PYTHONPATH=str(code_root)))
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed")
    load_after = os.getloadavg()
    return {"process_seconds": round(seconds, 1), "process_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2), **json.loads(record.read_text()),
            "load_average": [round(load_before[0], 1), round(load_after[0], 1)],
            "cpu_shared_with_other_processes": max(load_before[0], load_after[0]) > (os.cpu_count() or 1)}


def before_worktree(rev: str, work: Path) -> Path:
    """A detached git worktree of commit `rev` in WORK (made once)."""
    path = work / f"code-{rev}"
    if not path.is_dir():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), rev], cwd=ROOT, check=True, capture_output=True)
    return path


def spread(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def run_job(name: str, work: Path, runs: int, before: str | None) -> dict:
    job = JOBS[name]
    model, label = model_folder(job, work)
    records = [run_once(job, model, work, f"{name}-{i}") for i in range(runs)]
    digests = [r["sha256"] for r in records]
    result = {"model": label, "palettize": job["palettize"], "components": job["components"] or "default", "runs": records,
              "process_seconds": spread([r["process_seconds"] for r in records]),
              "process_cpu_seconds": spread([r["process_cpu_seconds"] for r in records]),
              "peak_rss_gb": spread([r["peak_rss_gb"] for r in records]),
              "stages": stage_spread(records), "sha256": digests[0], "runs_byte_identical": all(d == digests[0] for d in digests)}
    if before:
        old = run_once(job, model, work, f"{name}-before", before_worktree(before, work))
        result["before"] = {"commit": before, "sha256": old["sha256"], "byte_identical": old["sha256"] == digests[0],
                            "process_seconds": old["process_seconds"], "peak_rss_gb": old["peak_rss_gb"]}
    return result


def stage_spread(records: list[dict]) -> list[dict]:
    """Per stage (in order), min/median/max of wall, CPU and peak RSS over the runs."""
    rows = []
    for i, stage in enumerate(records[0]["stages"]):
        same = [r["stages"][i] for r in records]
        rows.append({"stage": stage["stage"], **{key: spread([s[key] for s in same]) for key in ("seconds", "cpu_seconds", "peak_rss_gb")}})
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(*sys.argv[2:7])
    from convert_benchmark import commit, machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="main,full-size,full-size-hub")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", help="a commit whose packages these runs must equal byte for byte")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sf-mem"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "convert_memory.json"
    result = json.loads(path.read_text()) if path.is_file() else {"jobs": {}}
    result.update(reference=REFERENCE, targets=TARGETS)
    for name in (j.strip() for j in args.jobs.split(",") if j.strip()):
        record = run_job(name, args.work, args.runs, args.before)
        record.update(command=" ".join([Path(sys.executable).name, *sys.argv]), commit=commit(), machine=machine(),
                      date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        result["jobs"][name] = record
        print(name, json.dumps({k: v for k, v in record.items() if k not in ("runs", "stages")}), flush=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / "convert_memory.md").write_text(summary_markdown(result))
    print(summary_markdown(result))


def _mmm(spread_: dict, unit: str = "") -> str:
    return f"{spread_['min']}{unit} / {spread_['median']}{unit} / {spread_['max']}{unit}"


def summary_markdown(r: dict) -> str:
    lines = ["# Conversion time and memory per stage", "",
             "Each figure is min / median / max over the runs; RSS in GiB (2^30 bytes).", ""]
    for name, job in r["jobs"].items():
        if "runs" not in job:
            continue  # a record of the older one-run format
        loads = [run["load_average"] for run in job["runs"]]
        shared = any(run["cpu_shared_with_other_processes"] for run in job["runs"])
        lines += [f"## {name}", "", f"`{job['command']}` at commit `{job['commit']}`, {job['date']}; "
                  f"{job['machine']['cpus']} CPUs, {job['machine']['ram_gb']} GB RAM; load average before -> after each run: "
                  f"{', '.join(f'{a} -> {b}' for a, b in loads)}"
                  f"{'; other processes shared the CPU (wall times inflated, CPU times not)' if shared else ''}.", "",
                  f"Model: {job['model']}; `--palettize {job['palettize']}`, components {job['components']}; "
                  f"{len(job['runs'])} runs: wall {_mmm(job['process_seconds'], ' s')}, CPU {_mmm(job['process_cpu_seconds'], ' s')}, "
                  f"peak RSS {_mmm(job['peak_rss_gb'])}; package sizes {job['runs'][0]['sizes_mb']} MB.", "",
                  f"Packages byte-identical across the runs: {job['runs_byte_identical']}."]
        if "before" in job:
            b = job["before"]
            lines.append(f"Byte-identical to the packages of commit `{b['commit']}` (one run: {b['process_seconds']} s, "
                         f"peak RSS {b['peak_rss_gb']}): {b['byte_identical']}.")
        lines += ["", "| stage | wall s | CPU s | peak RSS |", "|---|---|---|---|"]
        lines += [f"| {s['stage']} | {_mmm(s['seconds'])} | {_mmm(s['cpu_seconds'])} | {_mmm(s['peak_rss_gb'])} |"
                  for s in job["stages"]]
        lines.append("")
    apple = r["reference"]["apple_torch2coreml"]
    for name in ("full-size-hub", "full-size"):
        job = r["jobs"].get(name)
        if job and "runs" in job:
            lines.append(f"{name} against Apple's torch2coreml on the Hub-layout folder ({apple['seconds']} s, "
                         f"{apple['peak_rss_gb']} GiB, measured on this machine kind): worst run's peak RSS "
                         f"{job['peak_rss_gb']['max'] / apple['peak_rss_gb']:.2f}x (target <= {r['targets']['full_size_peak_rss_vs_apple']}), "
                         f"slowest run's wall {job['process_seconds']['max'] / apple['seconds']:.2f}x "
                         f"(target <= {r['targets']['full_size_seconds_vs_apple']}).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
