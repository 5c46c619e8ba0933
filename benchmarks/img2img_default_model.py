"""Image to image on the bundled default model: how well its VAE encoder inverts its decoder, and
what the strength does, judged by the attribute judge (models/judge), not by the model's own loss.

1. Reconstruction: COUNT held-out shapes scenes (data set seed 1, from index 100000, never
   trained on) encoded (posterior mean) and decoded; PSNR against the scene.
2. Image to image: scene i as the starting image, the caption of scene i + COUNT (another shape,
   color and background) as the prompt, at each strength; the judge's accuracy on the generated
   images against the prompt's attributes and against the starting image's attributes. A small
   strength keeps the starting image, strength 1 redraws it from the prompt.

    python benchmarks/img2img_default_model.py [--count 32] [--strengths 0.25,0.5,0.75,1.0]

Writes benchmarks/results/img2img_default_model.json and .md with the command, machine and commit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FIRST_HELD_OUT = 100000  # scenes of data set seed 1 from this index are outside every training set


def scenes(count: int):
    from snapfusion_coreml.eval.shapes import scene

    return [scene(1, FIRST_HELD_OUT + i) for i in range(2 * count)]


@torch.no_grad()
def reconstruction_psnr(pipeline, images: list[np.ndarray]) -> list[float]:
    out = []
    for image in images:
        x = torch.from_numpy(image.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
        mean = pipeline.encoder(x)[:, : pipeline.decoder.config.latent_channels]
        y = pipeline.decoder(mean).clamp(-1, 1)
        out.append(float(10 * np.log10(4 / float(((y - x) ** 2).mean()))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "default"))
    parser.add_argument("--count", type=int, default=32)
    parser.add_argument("--strengths", default="0.25,0.5,0.75,1.0")
    args = parser.parse_args()

    from snapfusion_coreml.eval.judge import Judge, attribute_accuracy
    from snapfusion_coreml.eval.shapes import parse_prompt, render
    from snapfusion_coreml.modeling.loading import load_pipeline

    torch.set_num_threads(1)
    pipeline = load_pipeline(args.model)
    judge = Judge.load(ROOT / "models" / "judge")
    size = pipeline.defaults.image_size
    drawn = scenes(args.count)
    starts, targets = drawn[: args.count], drawn[args.count:]
    start_images = [render(s, size) for s in starts]
    psnr = reconstruction_psnr(pipeline, start_images)

    rows = []
    for strength in (float(s) for s in args.strengths.split(",")):
        images = [pipeline.generate(t.caption(), seed=i, init_image=Image.fromarray(img), strength=strength)
                  for i, (t, img) in enumerate(zip(targets, start_images))]
        predicted = judge.predict(np.stack(images))
        to_prompt = attribute_accuracy(predicted, [parse_prompt(t.caption()) for t in targets])
        to_start = attribute_accuracy(predicted, [parse_prompt(s.caption()) for s in starts])
        rows.append({"strength": strength, "prompt_accuracy": to_prompt, "start_image_accuracy": to_start})
        print(f"strength {strength}: prompt {to_prompt['attributes']:.3f}, starting image {to_start['attributes']:.3f}", flush=True)

    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    report = {"command": "python " + shlex.join(["benchmarks/img2img_default_model.py", *sys.argv[1:]]),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()}, "commit": commit,
              "model": str(args.model), "count": args.count, "steps": pipeline.defaults.steps,
              "guidance_scale": pipeline.defaults.guidance_scale,
              "reconstruction_psnr_db": {"mean": float(np.mean(psnr)), "min": float(np.min(psnr))}, "img2img": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "img2img_default_model.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# Image to image on the bundled default model", "",
             f"`{report['command']}` on {platform.platform()} ({os.cpu_count()} CPUs), commit {commit[:10]}; "
             f"{args.count} held-out scenes, {report['steps']} steps, guidance {report['guidance_scale']:g}, judged by models/judge.", "",
             f"Encoder -> decoder reconstruction (posterior mean): PSNR mean {np.mean(psnr):.1f} dB, min {np.min(psnr):.1f} dB.", "",
             "Starting image: scene i; prompt: the caption of another scene. Judge accuracy (shape, color, background, mean):", "",
             "| strength | against the prompt | against the starting image |", "|---|---|---|"]
    for row in rows:
        p, s = row["prompt_accuracy"], row["start_image_accuracy"]
        lines.append(f"| {row['strength']:g} | {p['shape']:.2f}, {p['color']:.2f}, {p['background']:.2f}, **{p['attributes']:.3f}** "
                     f"| {s['shape']:.2f}, {s['color']:.2f}, {s['background']:.2f}, **{s['attributes']:.3f}** |")
    (RESULTS / "img2img_default_model.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
