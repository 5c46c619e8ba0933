"""Train the bundled default model (models/default) with the SnapFusion recipe, end to end, on a CPU.

Every stage is a `snapfusion-coreml` command anyone can run on their own data and models:

  1. train autoencoder   a small diffusers AutoencoderKL on the shapes data set (latents 4x16x16 at 128 px)
  2. train latents       the first COUNT scenes encoded once into a .npy latent folder
  3. train base          CLIP text encoder + SD-v1.5-layout UNet (sd-v1.5-tiny), jointly, from scratch, eps
  4. train v-pred        the v-prediction fine-tune, text encoder included (--train-text-encoder)
  5. distill steps       16 -> 8 steps into the SnapFusion layout (snapfusion-tiny), CFG-aware
     (and the vanilla student, --cfg-probability 0, for the comparison)
  6. distill decoder     the 0.5-width slim decoder by data distillation
  7. bundle              fp16 copy into models/default with 8 steps, trailing spacing, the guidance scale

    python scripts/train_default_model.py [--work runs/default-model] [--pilot] [--from-stage N]

--pilot runs every stage for a few steps (minutes) to check the recipe before the full run.
Wall time, exact commands and every stage's loss summary go to
benchmarks/results/train_default_model.json (and .md); --pilot writes ..._pilot.json instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "snapfusion_coreml"]
GUIDANCE_SCALE = 3.0  # the bundled default's guidance: best judge accuracy of the CFG-aware student over w in 1, 2, 3, 4 (README)


def stages(work: Path, pilot: bool, base_steps: int = 2600, vpred_steps: int = 5000, distill_steps: int = 600,
           decoder_steps: int = 1000) -> list[tuple[str, list[str]]]:
    """(name, command arguments) of every training stage; step counts sized for ~1 h on 2 shared cores."""
    def steps(full: int) -> str:
        return str(3 if pilot else full)

    w = lambda name: str(work / name)  # noqa: E731
    common = ["--seed", "0", "--checkpoint-every", "0" if pilot else "100", "--overwrite"]
    distill = ["distill", "steps", w("teacher-v"), "--data", w("latents"), "--teacher-steps", "16",
               "--student-steps", "8", "--student-layout", "snapfusion-tiny", "--guidance-min", "2",
               "--guidance-max", "8", "--max-steps", steps(distill_steps), "--batch-size", "16", "--lr", "3e-4",
               "--ema-decay", "0.99", *common]
    return [
        # 64 px scenes: the same content at a quarter of the cost; the convolutional autoencoder then
        # encodes 128 px images into 16x16 latents (measured: benchmarks/results/train_default_model.md)
        ("autoencoder", ["train", "autoencoder", "--data", "shapes:0", "-o", w("vae"), "--image-size", "64",
                         "--max-steps", steps(2500), "--batch-size", "16", "--lr", "1e-3", *common]),
        ("latents", ["train", "latents", w("vae"), "--data", "shapes:0", "-o", w("latents"),
                     "--count", "64" if pilot else "4096", "--overwrite"]),
        ("base", ["train", "base", "--data", w("latents"), "--vae", w("vae"), "-o", w("teacher-eps"),
                  "--layout", "sd-v1.5-tiny", "--max-steps", steps(base_steps), "--batch-size", "32", "--lr", "1e-3",
                  "--warmup-steps", "50", "--ema-decay", "0.995", *common]),
        # the longest fine-tune: at t near 999 the v target is ~ -x0, so colors (decided at the
        # highest noise levels of 16x16 latents) learn here far faster than under the eps loss; the
        # text encoder keeps learning too (with it frozen after `train base`, shape words stayed at
        # chance: README, "The bundled default model")
        ("v-pred", ["train", "v-pred", w("teacher-eps"), "--data", w("latents"), "-o", w("teacher-v"),
                    "--max-steps", steps(vpred_steps), "--batch-size", "32", "--lr", "5e-4", "--ema-decay", "0.995",
                    "--train-text-encoder", *common]),
        ("distill-cfg", distill + ["-o", w("student-cfg"), "--cfg-probability", "0.5"]),
        ("distill-vanilla", distill + ["-o", w("student-vanilla"), "--cfg-probability", "0"]),
        # the autoencoder's latents of real scenes: teacher samples at this scale are too noisy a
        # target (measured: MSE 1.2 -> 0.85 in 250 steps, judge accuracy 0.53 -> 0.23 with that decoder)
        ("decoder", ["distill", "decoder", w("student-cfg"), "--prompts", w("latents"), "-o", w("student-slim"),
                     "--width-multiplier", "0.5", "--max-steps", steps(decoder_steps), "--batch-size", "8",
                     "--lr", "5e-4", "--ema-decay", "0.99", *common]),
    ]


def summarize_log(run_dir: Path) -> dict:
    """First/last/min loss and the held-out evaluation loss from a run folder's log.jsonl."""
    path = run_dir / "log.jsonl"
    if not path.is_file():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line]
    steps = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval_after" in r]
    out = {}
    if steps:
        losses = [r["loss"] for r in steps]
        tail = losses[-max(1, len(losses) // 10):]
        out.update(steps=len(steps), loss_first=losses[0], loss_last10pct_mean=sum(tail) / len(tail), loss_min=min(losses),
                   samples_per_s_mean=sum(r["samples_per_s"] for r in steps) / len(steps))
    if evals:
        out.update(eval_before=evals[-1]["eval_before"], eval_after=evals[-1]["eval_after"])
    return out


def markdown(report: dict) -> str:
    """The stage table of benchmarks/results/train_default_model.md."""
    lines = [f"# Training the bundled default model{' (pilot)' if report.get('pilot') else ''}", "",
             f"`python scripts/train_default_model.py` on {report['machine']['cpus']} CPU cores "
             f"({report['machine']['processor']}, {report['machine']['platform']}, shared with other jobs), "
             f"{report['machine']['threads_per_stage']} torch thread per stage, commit {report['commit'][:10]}. "
             f"Total wall time {report['total_wall_s'] / 60:.1f} min.", "",
             "| stage | wall | steps | samples/s | loss first -> last 10% | held-out loss before -> after |",
             "|---|---|---|---|---|---|"]
    for name, stage in report["stages"].items():
        loss = (f"{stage['loss_first']:.4g} -> {stage['loss_last10pct_mean']:.4g}" if "loss_first" in stage else "")
        held = (f"{stage['eval_before']:.4g} -> {stage['eval_after']:.4g}" if "eval_before" in stage else "")
        speed = f"{stage['samples_per_s_mean']:.1f}" if "samples_per_s_mean" in stage else ""
        lines.append(f"| {name} | {stage['wall_s'] / 60:.1f} min | {stage.get('steps', '')} | {speed} | {loss} | {held} |")
    lines += ["", "Exact commands (each stage's log.jsonl is in WORK/OUT.run/):", "", "```bash"]
    lines += [stage["command"] for stage in report["stages"].values()]
    lines += ["```", ""]
    if report.get("notes"):
        lines += ["Notes:", ""] + [f"- {note}" for note in report["notes"]] + [""]
    return "\n".join(lines)


def bundle(work: Path, out: Path, guidance: float, source: str) -> None:
    """models/default: a trained stage's model (WORK/SOURCE), fp16, 8 steps, trailing, `guidance`."""
    import dataclasses

    import torch

    from snapfusion_coreml.modeling.loading import load_pipeline, save_pipeline

    pipeline = load_pipeline(work / source)
    pipeline = dataclasses.replace(
        pipeline, defaults=dataclasses.replace(pipeline.defaults, steps=8, guidance_scale=guidance, image_size=128),
        scheduler=dataclasses.replace(pipeline.scheduler, timestep_spacing="trailing"),
        source="scripts/train_default_model.py: shapes data set, SnapFusion recipe (benchmarks/results/train_default_model.md)")
    save_pipeline(pipeline, out, overwrite=True, dtype=torch.float16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "default-model")
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--pilot", action="store_true", help="a few steps per stage; no bundling")
    parser.add_argument("--from-stage", type=int, default=1, help="skip earlier stages (their outputs exist)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per stage (1 is fastest on a shared machine: no spinning OpenMP barriers)")
    parser.add_argument("--guidance-scale", type=float, default=GUIDANCE_SCALE)
    parser.add_argument("--bundle", default="student-cfg",
                        help="stage output to bundle: student-cfg (full decoder; the slim decoder did not reach its "
                             "accuracy in this budget, README) or student-slim")
    parser.add_argument("--vpred-steps", type=int, default=5000, help="train v-pred optimizer steps")
    parser.add_argument("--distill-steps", type=int, default=600, help="distill steps optimizer steps (each student)")
    parser.add_argument("--decoder-steps", type=int, default=1000, help="distill decoder optimizer steps")
    parser.add_argument("--base-steps", type=int, default=2600,
                        help="train base optimizer steps (rerun with fewer and --from-stage 3 to stop at a checkpoint)")
    args = parser.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    results_path = ROOT / "benchmarks" / "results" / ("train_default_model_pilot.json" if args.pilot else "train_default_model.json")
    report = json.loads(results_path.read_text()) if results_path.is_file() and args.from_stage > 1 else {}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    report.update(machine={"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                           "cpus": os.cpu_count(), "threads_per_stage": args.threads},
                  commit=commit, pilot=args.pilot, work=str(args.work))
    report.setdefault("stages", {})
    args.work.mkdir(parents=True, exist_ok=True)
    for n, (name, cmd) in enumerate(stages(args.work, args.pilot, args.base_steps, args.vpred_steps, args.distill_steps, args.decoder_steps), start=1):
        if n < args.from_stage:
            continue
        print(f"[{n}] {name}: snapfusion-coreml {shlex.join(cmd)}", flush=True)
        tic = time.perf_counter()
        done = subprocess.run(CLI + cmd, env=env)
        wall = time.perf_counter() - tic
        out = Path(cmd[cmd.index("-o") + 1])
        report["stages"][name] = {"command": "snapfusion-coreml " + shlex.join(cmd), "wall_s": round(wall, 1),
                                  "exit_code": done.returncode, **summarize_log(out.with_name(out.name + ".run"))}
        report["total_wall_s"] = round(sum(s["wall_s"] for s in report["stages"].values()), 1)
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(report, indent=2) + "\n")
        results_path.with_suffix(".md").write_text(markdown(report))
        print(f"[{n}] {name}: {wall:.0f} s, exit {done.returncode}", flush=True)
        if done.returncode:
            sys.exit(done.returncode)
    if not args.pilot:
        bundle(args.work, args.out, args.guidance_scale, args.bundle)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
