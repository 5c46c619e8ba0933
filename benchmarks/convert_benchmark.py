"""Conversion and PyTorch CPU benchmark of full-size SD-v1.5 and SnapFusion pipelines.

Random-weight full-size pipelines are built locally (no downloads) and saved as model folders.
For each layout:
  - parameters and GMACs per component (GMACs from the latency cost model's op list, batch 1);
  - PyTorch CPU time of the text encoder, one UNet step (batch 2, 64x64 latent) and the decoder,
    and the whole generation computed from them as the paper's Table 4 does
    (2 x text encoder + steps x UNet step + decoder; SD-v1.5: 50 steps + full decoder,
    SnapFusion: 8 steps + slim decoder), both layouts measured in the same run;
  - per component, conversion wall time, peak RSS and package size in fp16 and 6-bit kmeans,
    each conversion in its own `snapfusion-coreml convert` process (peak RSS from wait4);
  - the whole SnapFusion pipeline converted by one CLI run (three components, 6-bit text encoder
    and UNet), against the targets: <= 10 minutes and <= 10 GB peak RSS.

    python benchmarks/convert_benchmark.py [--work /tmp/sf-bench] [--repeats 3]

Writes benchmarks/results/convert_full_size.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LAYOUTS = ("sd-v1.5", "snapfusion")  # each with the decoder and steps SnapFusion pairs it with
TARGETS = {"snapfusion_pipeline_6bit_minutes": 10.0, "snapfusion_pipeline_6bit_peak_rss_gb": 10.0,
           "unet_step_ratio_max": 0.5, "generation_ratio_max": 1 / 15}


def machine() -> dict:
    from snapfusion_coreml.optional import require

    psutil = require("psutil", "bench", "benchmark memory figures")

    return {"uname": " ".join(platform.uname()), "cpus": os.cpu_count(), "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    # tracked files only, results excluded: the code that ran is the commit's unless this is set
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!benchmarks/results"],
                           cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("+uncommitted" if dirty else "")


def pairing(layout_name: str):
    """The decoder and steps SnapFusion pairs the layout with (config.LayoutPairing)."""
    from snapfusion_coreml.config import LayoutPairing, resolve_layout

    return LayoutPairing.of(resolve_layout(layout_name))


def gmacs(layout_name: str) -> dict:
    from snapfusion_coreml.config import plan_blocks, resolve_layout
    from snapfusion_coreml.latency.cost_model import block_ops, decoder_ops, text_encoder_ops, unet_other_ops

    layout = resolve_layout(layout_name)
    unet = sum(op.macs for spec in plan_blocks(layout) for op in block_ops(spec, layout, 64, 1))
    unet += sum(op.macs for op in unet_other_ops(layout, 64, 1))
    decoder = sum(op.macs for op in decoder_ops(pairing(layout_name).decoder, 64))
    return {"text_encoder": sum(op.macs for op in text_encoder_ops()) / 1e9, "unet": unet / 1e9, "decoder": decoder / 1e9}


def time_call(fn, repeats: int) -> float:
    """Fastest of `repeats` calls after one warm-up: on a shared machine the minimum is the
    least disturbed measurement."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return min(samples)


@torch.no_grad()
def torch_timings(pipeline, repeats: int) -> dict:
    ids = torch.full((1, 77), 49407, dtype=torch.long)
    ids[0, :5] = torch.tensor([49406, 320, 1125, 539, 49407])
    sample, t = torch.randn(2, 4, 64, 64), torch.tensor([999.0, 999.0])
    context = torch.randn(2, pipeline.unet.layout.cross_attention_dim, 1, 77)
    z = torch.randn(1, 4, 64, 64)
    return {
        "text_encoder_s": time_call(lambda: pipeline.text_encoder(input_ids=ids), repeats),
        "unet_step_s": time_call(lambda: pipeline.unet(sample, t, context), repeats),
        "decoder_s": time_call(lambda: pipeline.decoder(z), max(1, repeats // 2)),
    }


def run_convert(model: Path, out: Path, args: list[str]) -> dict:
    """One `snapfusion-coreml convert` process: wall time, peak RSS (wait4), package sizes."""
    command = [sys.executable, "-m", "snapfusion_coreml", "convert", str(model), "-o", str(out), "--overwrite", *args]
    env = dict(os.environ, TQDM_DISABLE="1")
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{err[-2000:]}")
    from snapfusion_coreml.contracts.pipeline_json import PipelineManifest

    sizes = {k: c.size_bytes for k, c in PipelineManifest.read(out).components.items()}
    return {"command": " ".join(command[1:]), "seconds": round(seconds, 1), "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2),
            "size_bytes": sizes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/sf-bench"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--torch-only", action="store_true",
                        help="re-measure only the PyTorch CPU timings and update the existing results")
    args = parser.parse_args()
    if args.torch_only:
        return update_torch_timings(args.repeats)
    from snapfusion_coreml.modeling.factory import build_full_size_pipeline
    from snapfusion_coreml.modeling.loading import save_pipeline

    args.work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    result = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(), "commit": commit(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "layouts": {}, "targets": TARGETS}

    # 1. PyTorch: parameters, GMACs, CPU timings (both layouts in this run), then save the models
    for name in LAYOUTS:
        spec = pairing(name)
        pipeline = build_full_size_pipeline(name)
        params = {"text_encoder": sum(p.numel() for p in pipeline.text_encoder.parameters()) / 1e6,
                  "unet": pipeline.unet.num_parameters() / 1e6, "decoder": pipeline.decoder.num_parameters() / 1e6}
        timing = torch_timings(pipeline, args.repeats)
        generation = 2 * timing["text_encoder_s"] + spec.steps * timing["unet_step_s"] + timing["decoder_s"]
        result["layouts"][name] = {"steps": spec.steps, "slim_decoder": spec.slim_decoder, "params_m": params,
                                   "gmacs_batch1": gmacs(name), "torch_cpu": {**timing, "generation_s": generation}}
        print(name, json.dumps(result["layouts"][name]), flush=True)
        save_pipeline(pipeline, args.work / name, overwrite=True)
        del pipeline

    # 2. conversions, one process each
    for name in LAYOUTS:
        conversions = {}
        for component in ("text_encoder", "unet", "decoder"):
            for label, extra in (("fp16", []), ("6bit", ["--palettize", "6"])):
                run = run_convert(args.work / name, args.work / f"{name}-{component}-{label}", ["--components", component, *extra])
                conversions[f"{component}/{label}"] = run
                print(name, component, label, json.dumps(run), flush=True)
                shutil.rmtree(args.work / f"{name}-{component}-{label}")
        result["layouts"][name]["conversions"] = conversions

    # 3. the whole SnapFusion pipeline in one run (text encoder and UNet 6-bit, decoder fp16)
    whole = run_convert(args.work / "snapfusion", args.work / "snapfusion-6bit", ["--palettize", "6"])
    result["snapfusion_pipeline_6bit"] = whole

    write_results(result)


def update_torch_timings(repeats: int) -> None:
    """Re-measure the PyTorch CPU timings of both layouts (same run) into the existing results."""
    from snapfusion_coreml.modeling.factory import build_full_size_pipeline

    result = json.loads((RESULTS / "convert_full_size.json").read_text())
    for name in LAYOUTS:
        pipeline = build_full_size_pipeline(name)
        timing = torch_timings(pipeline, repeats)
        timing["generation_s"] = 2 * timing["text_encoder_s"] + pairing(name).steps * timing["unet_step_s"] + timing["decoder_s"]
        result["layouts"][name]["torch_cpu"] = timing
        print(name, json.dumps(timing), flush=True)
        del pipeline
    result["torch_timing"] = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "commit": commit(),
                              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine()}
    write_results(result)


def write_results(result: dict) -> None:
    # ratios against the targets
    whole = result["snapfusion_pipeline_6bit"]
    sd, sf = result["layouts"]["sd-v1.5"]["torch_cpu"], result["layouts"]["snapfusion"]["torch_cpu"]
    result["ratios"] = {"unet_step": sf["unet_step_s"] / sd["unet_step_s"], "generation": sf["generation_s"] / sd["generation_s"]}
    result["met"] = {
        "snapfusion_pipeline_6bit_minutes": whole["seconds"] / 60 <= TARGETS["snapfusion_pipeline_6bit_minutes"],
        "snapfusion_pipeline_6bit_peak_rss_gb": whole["peak_rss_gb"] <= TARGETS["snapfusion_pipeline_6bit_peak_rss_gb"],
        "unet_step_ratio_max": result["ratios"]["unet_step"] <= TARGETS["unet_step_ratio_max"],
        "generation_ratio_max": result["ratios"]["generation"] <= TARGETS["generation_ratio_max"],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "convert_full_size.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "convert_full_size.md").write_text(summary_markdown(result))
    print(summary_markdown(result))


def summary_markdown(r: dict) -> str:
    lines = ["# Full-size conversion and PyTorch CPU benchmark", "",
             f"`{r['command']}` at commit `{r['commit']}`, {r['date']}; {r['machine']['uname']}, "
             f"{r['machine']['cpus']} CPUs, {r['machine']['ram_gb']} GB RAM. Random weights.", "",
             *([f"PyTorch timings re-measured by `{r['torch_timing']['command']}` at `{r['torch_timing']['commit']}`, "
                f"{r['torch_timing']['date']} (fastest of N after a warm-up).", ""] if "torch_timing" in r else []),
             "| layout | params TE / UNet / dec (M) | GMACs UNet (b=1) | TE s | UNet step s (b=2) | decoder s | generation s |",
             "|---|---|---|---|---|---|---|"]
    for name, lay in r["layouts"].items():
        p, t = lay["params_m"], lay["torch_cpu"]
        lines.append(f"| {name} ({lay['steps']} steps) | {p['text_encoder']:.0f} / {p['unet']:.0f} / {p['decoder']:.1f} | "
                     f"{lay['gmacs_batch1']['unet']:.0f} | {t['text_encoder_s']:.3f} | {t['unet_step_s']:.2f} | "
                     f"{t['decoder_s']:.2f} | {t['generation_s']:.1f} |")
    lines += ["", f"SnapFusion / SD-v1.5: UNet step {r['ratios']['unet_step']:.3f} (target <= 0.5), "
              f"generation {r['ratios']['generation']:.4f} (target <= {1/15:.4f}).", "",
              "| layout | component | fp16 s | fp16 GB RSS | fp16 MB | 6-bit s | 6-bit GB RSS | 6-bit MB |", "|---|---|---|---|---|---|---|---|"]
    for name, lay in r["layouts"].items():
        for c in ("text_encoder", "unet", "decoder"):
            a, b = lay["conversions"][f"{c}/fp16"], lay["conversions"][f"{c}/6bit"]
            lines.append(f"| {name} | {c} | {a['seconds']} | {a['peak_rss_gb']} | {a['size_bytes'][c] / 1e6:.0f} | "
                         f"{b['seconds']} | {b['peak_rss_gb']} | {b['size_bytes'][c] / 1e6:.0f} |")
    w = r["snapfusion_pipeline_6bit"]
    lines += ["", f"Whole SnapFusion pipeline, `--palettize 6`: {w['seconds'] / 60:.1f} min, peak RSS {w['peak_rss_gb']} GB "
              f"(targets <= 10 min, <= 10 GB): {'met' if r['met']['snapfusion_pipeline_6bit_minutes'] and r['met']['snapfusion_pipeline_6bit_peak_rss_gb'] else 'NOT met'}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
