"""Full-size benchmark of the Linux verifier and of mixed-bit palettization (a benchmark, not a test).

    python benchmarks/verify_benchmark.py [--analysis-latent 16] [--out benchmarks/results/verify_full_size.json]

Builds a random-weight full-size SnapFusion-layout pipeline locally (nothing is downloaded),
converts its UNet once to an fp16 ML program (64x64 latents, batch 2, split-einsum attention) and
measures, in one run on one machine:
  1. the interpreter's time for the full-size UNet package against a PyTorch CPU forward of the
     same model (second runs: weight decoding and allocator warm-up excluded from both);
  2. output PSNR against PyTorch and package size for fp16, 6-bit uniform, 6-bit kmeans, 4-bit
     kmeans and mixed-bit recipes at 4.5 and 3.5 average bits (palettized from the same fp16
     model; the mixed analysis runs once, both targets are allocated from it).
Random weights are not trained weights: their sensitivity to palettization is not a real model's.
Writes JSON (command, machine, commit, date, numbers) and a short markdown summary beside it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class PeakMemory:
    """Peak resident memory of this process, sampled every 0.2 s in a background thread."""

    def __init__(self):
        from snapfusion_coreml.optional import require

        psutil = require("psutil", "bench", "benchmark memory figures")

        self.process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.2)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def machine() -> dict:
    from snapfusion_coreml.optional import require

    psutil = require("psutil", "bench", "benchmark memory figures")

    return {"uname": " ".join(platform.uname()), "cpu_count": os.cpu_count(),
            "ram_bytes": psutil.virtual_memory().total, "python": platform.python_version(),
            "note": "shared machine: other jobs ran on the same 2 cores during this run"}


def git_commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def timed_runs(fn, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def measure_package(mlmodel, name: str, inputs: dict, reference, tmp: Path, runs: int = 1) -> dict:
    """Save, size, run in the interpreter (fp16 mode), compare with PyTorch, then free."""
    from snapfusion_coreml.digests import dir_size
    from snapfusion_coreml.interpreter.execute import run_program
    from snapfusion_coreml.interpreter.program import load_program
    from snapfusion_coreml.metrics import compare

    path = tmp / f"{name}.mlpackage"
    mlmodel.save(str(path))
    size = dir_size(path)
    program = load_program(path)
    outputs = {}
    times = timed_runs(lambda: outputs.update(run_program(program, inputs, "fp16")), runs)
    comparison = compare(reference, outputs["noise_pred"])
    program = outputs = None  # free the decoded weights before the next variant
    gc.collect()
    return {"size_bytes": size, "psnr_db": round(float(comparison.psnr_db), 2),
            "max_abs_error": float(comparison.max_abs_error), "non_finite": int(comparison.non_finite), "interpreter_fp16_s": [round(t, 2) for t in times], "path": path}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--analysis-latent", type=int, default=16, help="latent side of the mixed analysis copy")
    parser.add_argument("--layout", default="snapfusion", help="UNet layout preset (snapfusion-small for a dry run)")
    parser.add_argument("--image-size", type=int, default=512, help="image side in pixels (smaller for a dry run)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "verify_full_size.json")
    args = parser.parse_args()

    import shutil

    import torch

    from snapfusion_coreml import mixed_bits
    from snapfusion_coreml.convert.components import component_specs, numpy_inputs
    from snapfusion_coreml.convert.compress import palettize
    from snapfusion_coreml.convert.recipe import to_coreml
    from snapfusion_coreml.interpreter.execute import run_program
    from snapfusion_coreml.interpreter.program import load_program
    from snapfusion_coreml.modeling.factory import build_full_size_pipeline

    memory = PeakMemory()
    started = time.perf_counter()
    result = {"format": "snapfusion-verify-benchmark", "version": 1,
              "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "machine": machine(), "git_commit": git_commit(),
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "torch_threads": torch.get_num_threads()}
    tmp = Path(tempfile.mkdtemp(prefix="verify_bench_"))
    try:
        # 1. the model: only the UNet is kept
        log(f"building the full-size {args.layout} pipeline (random weights)")
        pipeline = build_full_size_pipeline(args.layout)
        spec = component_specs(pipeline, args.image_size // 8, ("unet",))[0]
        pipeline.text_encoder = pipeline.decoder = None
        gc.collect()
        inputs = numpy_inputs(spec)
        result["model"] = {"layout": pipeline.unet.layout.name, "unet_parameters": pipeline.unet.num_parameters(),
                           "inputs": {k: list(v.shape) for k, v in inputs.items()}, "attention": spec.attention}

        # 2. PyTorch CPU forward of the same model
        log("PyTorch forward")
        tensors = [torch.from_numpy(v) for v in inputs.values()]
        with torch.no_grad():
            torch_times = timed_runs(lambda: spec.module(*tensors), 2)
            reference = spec.module(*tensors).numpy()

        # 3. convert once (fp16), then the interpreter on the full-size package
        log("converting the UNet (fp16)")
        start = time.perf_counter()
        mlmodel = to_coreml(spec, "iOS16")
        convert_s = time.perf_counter() - start
        log(f"converted in {convert_s:.0f} s; interpreter runs")
        fp16 = measure_package(mlmodel, "fp16", inputs, reference, tmp, runs=2)
        program = load_program(fp16["path"])
        run_program(program, inputs, "fp32")  # decode once
        fp32_times = timed_runs(lambda: run_program(program, inputs, "fp32"), 1)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the same comparison on one thread (the machine is shared)
        one_thread = {"interpreter_fp16_s": round(timed_runs(lambda: run_program(program, inputs, "fp16"), 1)[0], 2)}
        with torch.no_grad():
            one_thread["pytorch_forward_s"] = round(timed_runs(lambda: spec.module(*tensors), 1)[0], 2)
        torch.set_num_threads(threads)
        program = None  # free the decoded weights
        gc.collect()
        result["timing"] = {
            "convert_s": round(convert_s, 1),
            "pytorch_forward_s": [round(t, 2) for t in torch_times],
            "interpreter_fp16_s": fp16["interpreter_fp16_s"],
            "interpreter_fp32_s": [round(t, 2) for t in fp32_times],
            "interpreter_over_pytorch": round(min(fp16["interpreter_fp16_s"][1:]) / min(torch_times), 2),
            "one_thread": one_thread,
            "one_thread_interpreter_over_pytorch": round(one_thread["interpreter_fp16_s"] / one_thread["pytorch_forward_s"], 2),
            "note": "interpreter: fastest run after the first (which decodes the weights); PyTorch: fastest run",
        }
        log(f"timing {result['timing']}")

        # 4. uniform-width palettization variants from the same fp16 model
        variants = {"fp16": fp16}
        for name, bits, method in (("6-bit uniform", 6, "uniform"), ("6-bit kmeans", 6, "kmeans"),
                                   ("4-bit kmeans", 4, "kmeans")):
            log(f"palettizing {name}")
            start = time.perf_counter()
            compressed = palettize(mlmodel, bits, method, False)
            seconds = time.perf_counter() - start
            variants[name] = measure_package(compressed, name.replace(" ", "_"), inputs, reference, tmp)
            variants[name]["palettize_s"] = round(seconds, 1)
            del compressed
            gc.collect()
            shutil.rmtree(variants[name]["path"])
            log(f"{name}: {variants[name]['psnr_db']} dB, {variants[name]['size_bytes'] / 1e6:.0f} MB")

        # 5. mixed-bit: one analysis, two targets
        mixed_bits.ANALYSIS_LATENT = args.analysis_latent
        log(f"mixed-bit analysis (latent {args.analysis_latent}, batch 1)")
        last = [time.perf_counter()]

        def progress(done: int, total: int) -> None:
            if done % 25 == 0 or done == total:
                log(f"  analysed {done}/{total} layers ({time.perf_counter() - last[0]:.0f} s)")

        start = time.perf_counter()
        sensitivity = mixed_bits.analyse_sensitivity(mlmodel, spec, "kmeans", False, progress)
        result["mixed_analysis"] = {"seconds": round(time.perf_counter() - start, 1), "layers": len(sensitivity.layers),
                                    "analysis_inputs": sensitivity.analysis_inputs,
                                    "floor_psnr_db": round(-10 * float(__import__("math").log10(sensitivity.floor_noise)), 2)}
        log(f"analysis {result['mixed_analysis']}")
        for target in (4.5, 3.5):
            recipe = mixed_bits.choose_bits(sensitivity, target)
            name = f"mixed {target}"
            start = time.perf_counter()
            compressed = palettize(mlmodel, 0, "kmeans", False, per_op_bits=recipe.bits)
            seconds = time.perf_counter() - start
            variants[name] = measure_package(compressed, name.replace(" ", "_"), inputs, reference, tmp)
            del compressed
            gc.collect()
            shutil.rmtree(variants[name]["path"])
            histogram = {}
            for b in recipe.bits.values():
                histogram[str(b)] = histogram.get(str(b), 0) + 1
            variants[name].update({"palettize_s": round(seconds, 1), "average_bits": round(recipe.average_bits, 3),
                                   "predicted_psnr_db": round(recipe.predicted_psnr, 2), "layers_by_bits": histogram})
            log(f"{name}: {variants[name]['psnr_db']} dB (predicted {recipe.predicted_psnr:.1f}), "
                f"{variants[name]['size_bytes'] / 1e6:.0f} MB")
        for v in variants.values():
            v.pop("path", None)
        result["variants"] = variants
        six = variants["6-bit kmeans"]["size_bytes"]
        result["targets"] = {
            "interpreter_within_2x_of_pytorch": bool(result["timing"]["interpreter_over_pytorch"] <= 2.0),
            "mixed_4.5_psnr_at_least_35_db": bool(variants["mixed 4.5"]["psnr_db"] >= 35.0),
            "mixed_4.5_size_at_most_0.8x_6bit": bool(variants["mixed 4.5"]["size_bytes"] <= 0.8 * six),
            "mixed_4.5_size_over_6bit_kmeans": round(variants["mixed 4.5"]["size_bytes"] / six, 3),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        result["peak_rss_bytes"] = memory.stop()
        result["total_s"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    args.out.with_suffix(".md").write_text(summary(result))
    log(f"wrote {args.out}")


def summary(r: dict) -> str:
    t = r["timing"]
    lines = [
        "# Verify benchmark: full-size SnapFusion UNet (random weights)", "",
        f"`{r['command']}` on {r['machine']['uname']} ({r['machine']['cpu_count']} CPUs, "
        f"{r['machine']['ram_bytes'] / 2**30:.0f} GiB RAM, shared with other jobs), commit {r['git_commit'][:12]}, {r['date']}.",
        f"UNet {r['model']['unet_parameters'] / 1e6:.0f}M parameters, inputs {r['model']['inputs']}, "
        f"peak RSS {r['peak_rss_bytes'] / 2**30:.1f} GiB, total {r['total_s'] / 60:.1f} min.", "",
        f"- Interpreter (fp16 mode) {min(t['interpreter_fp16_s'][1:]):.1f} s vs PyTorch CPU forward "
        f"{min(t['pytorch_forward_s']):.1f} s: {t['interpreter_over_pytorch']}x (target <= 2x); "
        f"fp32 mode {t['interpreter_fp32_s'][0]:.1f} s; conversion {t['convert_s']:.0f} s. On one thread: "
        f"interpreter {t['one_thread']['interpreter_fp16_s']:.1f} s, PyTorch {t['one_thread']['pytorch_forward_s']:.1f} s "
        f"({t['one_thread_interpreter_over_pytorch']}x).",
        f"- Mixed analysis: {r['mixed_analysis']['layers']} layers in {r['mixed_analysis']['seconds']:.0f} s "
        f"at {r['mixed_analysis']['analysis_inputs']}.", "",
        "| variant | size (MB) | PSNR vs PyTorch (dB) | predicted (dB) | average bits |",
        "|---|---|---|---|---|",
    ]
    for name, v in r["variants"].items():
        lines.append(f"| {name} | {v['size_bytes'] / 1e6:.0f} | {v['psnr_db']} | {v.get('predicted_psnr_db', '')} | "
                     f"{v.get('average_bits', '')} |")
    lines += ["", f"Targets: {r['targets']}", "",
              "Random-init weights: sensitivities are not those of a trained model; rerun on real weights."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
