"""Core AI vs Core ML on the same model (the bundled models/default by default): conversion wall
and CPU time, peak memory, asset sizes, and the CPU time of one UNet call on this machine, Core AI
assets in Apple's own runtime (coreai-core) and Core ML packages in this project's interpreter.

Each conversion is `snapfusion-coreml convert MODEL --format F --palettize P --json` in a child
process; its wall time, CPU time (user + sys of the child and its helpers) and peak RSS come from
wait4. Each UNet timing runs in a child process too: one warm-up call (for Core AI that includes
lowering the asset), then --calls calls on verify's deterministic inputs, each timed by wall clock
and by the process's CPU clock (all threads). The Core ML interpreter runs in fp16 mode, the
precision the phone computes in; the Core AI asset computes in float16 by construction. Last, the
same prompt and seed are drawn by PyTorch and by `generate OUT` of each folder (and of float16
folders of both formats, converted without palettization), and the images compared by PSNR.

    python benchmarks/coreai_vs_coreml.py [--model DIR] [--palettize text_encoder=8,unet=6] [--calls 5]

Writes benchmarks/results/coreai_vs_coreml.json and .md with the exact command, the machine, the
load average before and after (above the CPU count, other processes shared the CPU and wall times
are inflated; CPU times are not) and the git commit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FORMATS = ("coreml", "coreai")


def convert(model: str, out: Path, fmt: str, palettize: str) -> dict:
    argv = [sys.executable, "-m", "snapfusion_coreml", "convert", model, "-o", str(out), "--format", fmt,
            "--palettize", palettize, "--json", "--overwrite"]
    before = os.times()
    start = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), TQDM_DISABLE="1")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    out_text, err_text = proc.stdout.read().decode(), proc.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{shlex.join(argv)} failed:\n{err_text[-3000:]}")
    after = os.times()
    result = json.loads(out_text)
    return {
        "command": shlex.join(["snapfusion-coreml", *argv[3:]]),
        "wall_seconds": round(seconds, 2),
        "cpu_seconds": round((after.children_user - before.children_user) + (after.children_system - before.children_system), 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "components": {c["component"]: {"files": c["files"], "size_bytes": c["size_bytes"], "compression": c["compression"],
                                        "seconds": c["seconds"]} for c in result["components"]},
        "total_bytes": sum(c["size_bytes"] for c in result["components"]),
    }


def unet_child(folder: str, calls: int) -> None:
    """(child) Time UNet calls of a converted folder; print one JSON record."""
    import numpy as np

    from snapfusion_coreml.interpreter.folder import FolderRunner
    from snapfusion_coreml.verify.reference import component_inputs

    converted = FolderRunner(folder, "fp16")
    component = converted.component("unet")
    inputs = component_inputs("unet", component.inputs, converted.path)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    first = converted.run("unet", inputs)["noise_pred"]
    warmup = {"wall": time.perf_counter() - start_wall, "cpu": time.process_time() - start_cpu}
    walls, cpus = [], []
    for _ in range(calls):
        w, c = time.perf_counter(), time.process_time()
        out = converted.run("unet", inputs)["noise_pred"]
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
        assert np.array_equal(out, first), "a UNet call is not deterministic"
    converted.close()
    print(json.dumps({"format": component.format, "calls": calls, "threads": os.cpu_count(),
                      "first_call_wall_seconds": round(warmup["wall"], 4), "first_call_cpu_seconds": round(warmup["cpu"], 4),
                      "median_wall_seconds": round(float(np.median(walls)), 4), "median_cpu_seconds": round(float(np.median(cpus)), 4),
                      "min_cpu_seconds": round(min(cpus), 4), "unet_batch": list(inputs["sample"].shape)[0],
                      "sample_shape": list(inputs["sample"].shape)}))


def time_unet(folder: Path, calls: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--unet-child", str(folder), "--calls", str(calls)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"UNet timing of {folder} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


PROMPT, SEED = "a photo of an astronaut riding a horse on mars", 7


def generate(model: str, png: Path) -> None:
    argv = [sys.executable, "-m", "snapfusion_coreml", "generate", model, "--prompt", PROMPT, "--seed", str(SEED), "-o", str(png)]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), TQDM_DISABLE="1")
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(argv)} failed:\n{done.stderr[-3000:]}")


def image_psnr(a: Path, b: Path) -> dict:
    """PSNR of two PNGs in the decoder's [-1, 1] range, and their largest difference in levels of 255."""
    import numpy as np
    from PIL import Image

    from snapfusion_coreml.metrics import psnr

    x, y = (np.asarray(Image.open(p)).astype(np.float64) / 127.5 - 1.0 for p in (a, b))
    return {"psnr_db": round(float(psnr(x, y)), 2), "max_levels": int(round(float(np.abs(x - y).max()) * 127.5))}


def images(model: str, work: Path, palettize: str) -> dict:
    """The same prompt and seed drawn by PyTorch and by `generate OUT` of each folder: the converted
    folders of this run (palettized) and float16 folders (no palettization) of both formats."""
    generate(model, work / "torch.png")
    for fmt in FORMATS:
        convert(model, work / f"{fmt}-fp16", fmt, "none")
        for name in (fmt, f"{fmt}-fp16"):
            generate(str(work / name), work / f"{name}.png")
    pairs = [("coreml", "coreai"), ("torch", "coreml"), ("torch", "coreai"),
             ("coreml-fp16", "coreai-fp16"), ("torch", "coreml-fp16"), ("torch", "coreai-fp16")]
    return {"prompt": PROMPT, "seed": SEED, "palettize": palettize,
            "pairs": [{"a": a, "b": b, **image_psnr(work / f"{a}.png", work / f"{b}.png")} for a, b in pairs]}


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    import numpy
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    for dist in ("coremltools", "coreai-core", "coreai-torch", "coreai-opt"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:
            versions[dist] = None
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1), "versions": versions}


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=ROOT)
    return done.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def markdown(record: dict) -> str:
    rows = record["results"]
    lines = [
        "# Core AI vs Core ML on the same model",
        "",
        f"Command: `{record['command']}`  ",
        f"Commit: `{record['git_commit']}`  ",
        f"Machine: {record['machine']['cpu']}, {record['machine']['cpu_count']} CPUs, {record['machine']['memory_gb']} GB, "
        f"{record['machine']['platform']}  ",
        f"Versions: {', '.join(f'{k} {v}' for k, v in record['machine']['versions'].items())}  ",
        f"Load average before / after: {record['load_before']} / {record['load_after']} "
        "(above the CPU count, wall times are inflated by other processes; CPU times are not)",
        "",
        f"Model: `{record['model']}`, `--palettize {record['palettize']}` for both formats.",
        "",
        "| | Core ML (.mlpackage) | Core AI (.aimodel) |",
        "|---|---:|---:|",
        f"| conversion wall time | {rows['coreml']['convert']['wall_seconds']} s | {rows['coreai']['convert']['wall_seconds']} s |",
        f"| conversion CPU time | {rows['coreml']['convert']['cpu_seconds']} s | {rows['coreai']['convert']['cpu_seconds']} s |",
        f"| conversion peak RSS | {rows['coreml']['convert']['peak_rss_mb']} MB | {rows['coreai']['convert']['peak_rss_mb']} MB |",
    ]
    for key in ("text_encoder", "unet", "decoder"):
        a, b = rows["coreml"]["convert"]["components"][key], rows["coreai"]["convert"]["components"][key]
        lines.append(f"| {key} size | {a['size_bytes'] / 1e6:.2f} MB | {b['size_bytes'] / 1e6:.2f} MB |")
    lines += [
        f"| total size | {rows['coreml']['convert']['total_bytes'] / 1e6:.2f} MB | {rows['coreai']['convert']['total_bytes'] / 1e6:.2f} MB |",
        f"| UNet call, CPU time (median of {rows['coreml']['unet']['calls']}) | {rows['coreml']['unet']['median_cpu_seconds']} s "
        f"| {rows['coreai']['unet']['median_cpu_seconds']} s |",
        f"| UNet call, wall time (median) | {rows['coreml']['unet']['median_wall_seconds']} s | {rows['coreai']['unet']['median_wall_seconds']} s |",
        f"| first UNet call, wall (Core AI: includes lowering the asset) | {rows['coreml']['unet']['first_call_wall_seconds']} s "
        f"| {rows['coreai']['unet']['first_call_wall_seconds']} s |",
        "",
        f"UNet input `sample` {rows['coreai']['unet']['sample_shape']} (batch {rows['coreai']['unet']['unet_batch']}: guidance in one call). "
        "Core ML: this project's interpreter (snapfusion_coreml/verify) in fp16 mode; Core AI: Apple's coreai-core "
        "runtime on the CPU. Neither is the phone: on device Core ML and Core AI use the GPU and Neural Engine.",
        "",
        f"Images: `generate` with \"{record['images']['prompt']}\", seed {record['images']['seed']}, PSNR in the decoder's "
        "[-1, 1] range and the largest difference in levels of 255 (`torch`: the PyTorch pipeline; `-fp16`: folders "
        "converted with `--palettize none`; the others with the palettization above):",
        "",
        "| image | vs | PSNR | max difference |",
        "|---|---|---:|---:|",
        *[f"| {p['a']} | {p['b']} | {p['psnr_db']} dB | {p['max_levels']} |" for p in record["images"]["pairs"]],
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/default")
    parser.add_argument("--palettize", default="text_encoder=8,unet=6")
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--work", default=None, help="folder for the converted outputs [default: a temporary one]")
    parser.add_argument("--unet-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.unet_child:
        unet_child(args.unet_child, args.calls)
        return
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="coreai-vs-coreml-"))
    command = shlex.join(["python", "benchmarks/coreai_vs_coreml.py", *sys.argv[1:]])
    load_before = [round(x, 2) for x in os.getloadavg()]
    results = {}
    for fmt in FORMATS:
        out = work / fmt
        results[fmt] = {"convert": convert(args.model, out, fmt, args.palettize)}
        results[fmt]["unet"] = time_unet(out, args.calls)
        print(f"{fmt}: {json.dumps(results[fmt])}", file=sys.stderr)
    record_images = images(args.model, work, args.palettize)
    record = {"command": command, "git_commit": git_commit(), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": machine(), "model": args.model, "palettize": args.palettize, "load_before": load_before,
              "load_after": [round(x, 2) for x in os.getloadavg()], "results": results, "images": record_images}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "coreai_vs_coreml.json").write_text(json.dumps(record, indent=2) + "\n")
    (RESULTS / "coreai_vs_coreml.md").write_text(markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
