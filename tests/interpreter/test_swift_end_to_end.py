"""Same prompt, same seed, same image: the Swift pipeline (snapfusion-cli generate --backend
interpreter: Swift tokenizer, RNG, sampler, guidance, decoding and PNG writer, the packages run by
`snapfusion-coreml interpret`) against `snapfusion-coreml generate OUT` (the Python pipeline on
the same converted packages, run in this test's process), both PNG files read back with PIL.

Each Swift run starts its own `interpret` server, and the fixed cost of a run (starting Python,
importing coremltools, loading the programs) outweighs its UNet steps: the Python side runs in
the test's process, where that cost is paid once, and each case draws with as few Swift runs as
its property needs.

The bundled default model is converted at fp16 (the README's main job adds palettization, which
changes the packages but not the comparison; set SNAPFUSION_E2E_FOLDER to a converted folder,
e.g. the main job's out/default, to compare on it instead). Skipped without a Swift toolchain.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli_runner import run_cli

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "a photo of an astronaut riding a horse on mars"
SEED = 7
# (max levels, mean levels) per channel, of 255. Where torch.randn runs the kernel the Swift RNG
# reproduces bit for bit (x86-64 with AVX2; checked against tests/golden/random.json), both
# pipelines start from the same noise: measured 0 levels apart in fp32 and fp16.
SAME_NOISE_BOUNDS = {"fp32": (2, 0.05), "fp16": (2, 0.05)}
# Elsewhere torch's scalar kernel (libm) differs from the Swift noise by ~1e-6. fp32 still agrees
# (measured max 1 level); in fp16 the programs round their float32 inputs to fp16, so such a
# difference can flip a rounding and grow over 8 steps (measured max 4 levels, mean 0.06).
OTHER_NOISE_BOUNDS = {"fp32": (2, 0.05), "fp16": (6, 0.5)}

pytestmark = [
    pytest.mark.skipif(shutil.which("swift") is None,
                       reason="no Swift toolchain (`swift` not on PATH): snapfusion-cli cannot be built here"),
    pytest.mark.usefixtures("one_thread"),
]


@pytest.fixture(scope="module")
def converted(convert_once) -> Path:
    given = os.environ.get("SNAPFUSION_E2E_FOLDER")
    if given:
        return Path(given)
    return convert_once(ROOT / "models" / "default")


def torch_noise_is_the_swift_noise() -> bool:
    """Whether torch.randn here gives the golden 1x4x64x64 tensor bit for bit (the kernel the
    Swift RNG reproduces; RandomTests checks the Swift side against the same digest)."""
    import importlib.util
    import json

    from snapfusion_coreml.schedule import initial_latents

    spec = importlib.util.spec_from_file_location("make_golden", ROOT / "tests" / "golden" / "make_golden.py")
    make_golden = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_golden)
    golden = json.loads((ROOT / "tests" / "golden" / "random.json").read_text(encoding="utf-8"))["latent_samples"][0]
    latents = initial_latents(golden["seed"], tuple(golden["shape"]))
    return make_golden.fnv1a64(latents.numpy().astype("<f4").tobytes()) == golden["fnv1a64"]


@pytest.fixture(scope="module")
def swift_cli() -> Path:
    package = ROOT / "ios_app"
    build = subprocess.run(["swift", "build", "-j", "2", "--product", "snapfusion-cli"], cwd=package,
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    bin_path = subprocess.run(["swift", "build", "--show-bin-path"], cwd=package, capture_output=True, text=True, check=True)
    return Path(bin_path.stdout.strip()) / "snapfusion-cli"


def draw_python(folder: Path, capsys, out: Path, precision: str, *extra: str) -> np.ndarray:
    """`snapfusion-coreml generate OUT`'s image of the folder, prompt and seed, run in this process."""
    code, _, err = run_cli(["generate", str(folder), "--prompt", PROMPT, "--seed", str(SEED), "--precision", precision,
                            "-o", str(out), *extra], capsys)
    assert code == 0, err[-3000:]
    return np.asarray(Image.open(out).convert("RGB")).astype(np.int16)


def draw_both(folder: Path, swift_cli: Path, tmp_path: Path, capsys, precision: str, *extra: str) -> tuple[np.ndarray, np.ndarray]:
    """(Swift image, Python image) of the same folder, prompt, seed and precision."""
    # 1. Swift: everything but the models, over the interpreter protocol
    out = tmp_path / "swift.png"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    run = subprocess.run([str(swift_cli), "generate", "--resources", str(folder), "--prompt", PROMPT,
                          "--seed", str(SEED), "--backend", "interpreter", "--precision", precision,
                          "--python-command", f"{sys.executable} -m snapfusion_coreml", "-o", str(out), *extra],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    swift = np.asarray(Image.open(out).convert("RGB")).astype(np.int16)

    # 2. Python: `snapfusion-coreml generate OUT`, the same packages, interpreter and precision
    python = draw_python(folder, capsys, tmp_path / "python.png", precision, *extra)
    assert swift.shape == python.shape, f"expected {python.shape}, got {swift.shape}"
    assert python.std() > 1, "the image is flat: the comparison would prove nothing"
    return swift, python


def with_sampler(converted: Path, out: Path, sampler: str, steps: int, guidance: float) -> Path:
    """`converted` with the sampler record convert writes for `--sampler SAMPLER --steps STEPS`
    (and guidance): the packages are the same, only pipeline.json's sampler and guidance change."""
    import dataclasses

    from snapfusion_coreml.config import SchedulerConfig
    from snapfusion_coreml.contracts.pipeline_json import PipelineManifest
    from snapfusion_coreml.samplers.plan import plan
    from snapfusion_coreml.samplers.settings import model_settings

    shutil.copytree(converted, out)
    manifest = PipelineManifest.read(out)
    settings = model_settings(SchedulerConfig(), manifest.sampler.settings.as_scheduler_config(), "test", sampler)
    record = plan(settings, manifest.scheduler, steps)
    dataclasses.replace(manifest, sampler=record, guidance=dataclasses.replace(manifest.guidance, default_scale=guidance)).write(out)
    return out


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.slow
def test_swift_and_python_pipelines_draw_the_same_image(converted, swift_cli, tmp_path, capsys, precision):
    swift, python = draw_both(converted, swift_cli, tmp_path, capsys, precision)
    difference = np.abs(swift - python)
    same_noise = torch_noise_is_the_swift_noise()
    print(f"Swift vs Python on {converted.name} ({precision}, {'same' if same_noise else 'other'} torch noise kernel): "
          f"max {difference.max()} levels, mean {difference.mean():.4f}, "
          f"{np.count_nonzero(difference)} of {difference.size} channel values differ")
    max_levels, mean_levels = (SAME_NOISE_BOUNDS if same_noise else OTHER_NOISE_BOUNDS)[precision]
    assert difference.max() <= max_levels, f"expected at most {max_levels} levels apart, got {difference.max()}"
    assert difference.mean() <= mean_levels, f"expected a mean difference under {mean_levels}, got {difference.mean():.4f}"


def test_bad_folder_is_one_line_and_exit_2(swift_cli, tmp_path):
    run = subprocess.run([str(swift_cli), "generate", "--resources", str(tmp_path), "--prompt", "x",
                          "--backend", "interpreter"], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "no pipeline.json" in run.stderr


@pytest.fixture(scope="module")
def encoder_folder(diffusers_folder, convert_once) -> Path:
    """The tiny diffusers folder (its VAE has an encoder) converted with every component."""
    out = convert_once(diffusers_folder[0], unet_batch=2)
    assert (out / "VAEEncoder.mlpackage").is_dir()
    return out


@pytest.mark.parametrize("sampler, steps, guidance", [("euler_ancestral", 3, 3.0), ("lcm", 2, 1.0), ("dpmsolver++", 3, 3.0)])
@pytest.mark.slow
def test_swift_and_python_agree_on_every_sampler(encoder_folder, swift_cli, tmp_path, capsys, sampler, steps, guidance):
    """The tiny folder's packages (converted once for these and the image-to-image cases; the
    bundled model's are compared above) with another sampler record: Euler ancestral and LCM draw
    fresh noise every step from the seed's stream, DPM-Solver++ keeps the previous output."""
    folder = with_sampler(encoder_folder, tmp_path / "folder", sampler, steps, guidance)
    swift, python = draw_both(folder, swift_cli, tmp_path, capsys, "fp32")
    difference = np.abs(swift - python)
    print(f"Swift vs Python, {sampler} {steps} steps: max {difference.max()} levels, mean {difference.mean():.4f}")
    max_levels, mean_levels = (SAME_NOISE_BOUNDS if torch_noise_is_the_swift_noise() else OTHER_NOISE_BOUNDS)["fp32"]
    assert difference.max() <= max_levels and difference.mean() <= mean_levels


@pytest.mark.slow
def test_swift_and_python_agree_on_a_full_lcm_unet(lcm_unet_folder, convert_once, swift_cli, tmp_path, capsys):
    """A UNet with a guidance embedding: Swift sends `timestep_cond`, one call per step, no CFG."""
    out = convert_once(lcm_unet_folder[0])
    swift, python = draw_both(out, swift_cli, tmp_path, capsys, "fp32", "--guidance", "6")
    difference = np.abs(swift - python)
    assert difference.max() <= 2 and difference.mean() <= 0.05, (difference.max(), difference.mean())


@pytest.mark.parametrize("sampler, steps, guidance, strength", [("ddim", 4, 3.0, 0.6), ("lcm", 4, 1.0, 0.5)])
@pytest.mark.slow
def test_swift_and_python_agree_on_image_to_image(encoder_folder, swift_cli, tmp_path, capsys, sampler, steps, guidance, strength):
    """Image to image: the encoder's posterior sample, the noise at the strength's timestep and the
    sampler from there, in both pipelines from one PPM file (the Swift CLI reads binary PPM)."""
    from snapfusion_coreml.eval.shapes import render, scene

    folder = with_sampler(encoder_folder, tmp_path / "folder", sampler, steps, guidance)
    start = tmp_path / "start.ppm"
    Image.fromarray(render(scene(3, 64), 64)).save(start)
    extra = ("--init-image", str(start), "--strength", str(strength))
    swift, python = draw_both(folder, swift_cli, tmp_path, capsys, "fp32", *extra)
    difference = np.abs(swift - python)
    print(f"Swift vs Python img2img, {sampler} strength {strength}: max {difference.max()} levels, mean {difference.mean():.4f}")
    max_levels, mean_levels = (SAME_NOISE_BOUNDS if torch_noise_is_the_swift_noise() else OTHER_NOISE_BOUNDS)["fp32"]
    assert difference.max() <= max_levels and difference.mean() <= mean_levels
    # the text-to-image draw of the same folder and seed (Python's: the Swift one agrees with it, as the
    # cases above check) is further from the image-to-image one than the bound
    text_to_image = draw_python(folder, capsys, tmp_path / "text_to_image.png", "fp32")
    assert np.abs(text_to_image - swift).max() > max_levels, "the starting image changed nothing: the test proves nothing"
