"""`generate OUT`: the converted packages, run by the interpreter, draw the PyTorch pipeline's image."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from cli_runner import run_cli
from snapfusion_coreml.interpreter.backend import load_package_pipeline
from snapfusion_coreml.metrics import MIN_PSNR_DB, PARITY_PSNR_DB, psnr
from snapfusion_coreml.pipeline import SamplingPlan, TorchBackend, generate_image
from snapfusion_coreml.tokenizer import tokenize

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPT = "a red circle on a blue background"


def _png(path) -> np.ndarray:
    """The PNG back in the decoder's [-1, 1] range, where PSNR's peak is the image's own contrast
    (the tiny random model draws low-contrast images: on 0..255 any two would look alike)."""
    return np.asarray(Image.open(path)).astype(np.float64) / 127.5 - 1.0


def _linked_copy(folder, target):
    """A copy of a converted folder whose packages are links (pipeline.json may then be edited)."""
    target.mkdir()
    for item in folder.iterdir():
        if item.suffix == ".mlpackage":
            (target / item.name).symlink_to(item, target_is_directory=True)
        else:
            shutil.copy(item, target / item.name)
    return target


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
@pytest.mark.slow
def test_packages_draw_the_pytorch_image(tiny_converted_dir, tiny_model_dir, tmp_path, capsys, precision):
    args = ["--prompt", PROMPT, "--seed", "3", "--guidance", "5"]
    code, _, err = run_cli(["generate", str(tiny_model_dir), *args, "-o", str(tmp_path / "torch.png")], capsys)
    assert code == 0, err
    code, _, err = run_cli(["generate", str(tiny_converted_dir), *args, "--precision", precision,
                            "-o", str(tmp_path / "coreml.png")], capsys)
    assert code == 0, err
    assert f"interpreter {precision}" in err
    reference, image = _png(tmp_path / "torch.png"), _png(tmp_path / "coreml.png")
    assert image.shape == reference.shape == (64, 64, 3)
    assert psnr(reference, image) >= MIN_PSNR_DB
    # a different seed is a different image: the bar is not met by accident
    run_cli(["generate", str(tiny_model_dir), *args[:2], "--seed", "4", "--guidance", "5", "-o", str(tmp_path / "other.png")], capsys)
    assert psnr(reference, _png(tmp_path / "other.png")) < MIN_PSNR_DB


@pytest.mark.parametrize("w", [1.0, 4.0])
def test_one_generation_path_for_every_unet_batch(tiny_pipeline, w):
    """A backend that takes UNet batch 1 (two calls per step, as `--unet-batch 1` packages) or
    only batch 2 (guidance off included) draws what the PyTorch pipeline draws."""
    calls = []

    class Fixed(TorchBackend):
        def unet(self, sample, timestep, context, timestep_cond=None):
            assert sample.shape[0] == self.unet_batch == timestep.shape[0] == context.shape[0]
            calls.append(sample.shape[0])
            return super().unet(sample, timestep, context, timestep_cond)

    reference = tiny_pipeline.generate(PROMPT, steps=2, guidance_scale=w, seed=5)
    for batch in (1, 2):
        backend = Fixed(tiny_pipeline)
        backend.unet_batch = batch
        calls.clear()
        sampling = SamplingPlan(tiny_pipeline.scheduler, tiny_pipeline.sampler_settings())
        image = generate_image(backend, tiny_pipeline.tokenizer, sampling, tiny_pipeline.defaults, PROMPT,
                               steps=2, guidance_scale=w, seed=5)
        assert calls == [batch] * (2 if batch == 2 or w == 1.0 else 4)
        assert psnr(reference / 127.5 - 1.0, image / 127.5 - 1.0) >= PARITY_PSNR_DB


@pytest.mark.slow
def test_sampler_and_tokenizer_come_from_pipeline_json(tiny_converted_dir, tmp_path):
    folder = _linked_copy(tiny_converted_dir, tmp_path / "edited")
    manifest = json.loads((folder / "pipeline.json").read_text())
    manifest["sampler"]["timesteps"] = [999, 600, 123]
    manifest["sampler"]["previous_timesteps"] = [600, 123, -1]
    manifest["tokenizer"]["pad_token_id"] = 0  # SD-2's "!" padding
    (folder / "pipeline.json").write_text(json.dumps(manifest))

    pipeline = load_package_pipeline(folder)
    seen = []
    pipeline.generate(PROMPT, seed=0, on_step=lambda i, t, z: seen.append(t))
    assert seen == [999, 600, 123]
    ids = tokenize(pipeline.tokenizer, ["a cat"])[0].tolist()
    assert ids[:4] == [49406, 320, 2368, 49407] and set(ids[4:]) == {0}
    seen.clear()  # another step count: the folder's sampler replanned (trailing DDIM)
    pipeline.generate(PROMPT, steps=2, seed=0, on_step=lambda i, t, z: seen.append(t))
    assert seen == [999, 499]


def test_bad_options_for_a_converted_folder(tiny_converted_dir, tiny_model_dir, tmp_path, capsys):
    base = ["--prompt", PROMPT, "-o", str(tmp_path / "x.png")]
    cases = [
        ([str(tiny_converted_dir), "--image-size", "128"], "expected an image size this folder was converted for (64x64), got 128x128"),
        ([str(tiny_converted_dir), "--device", "cuda"], "expected --device auto or cpu for a converted folder"),
        ([str(tiny_converted_dir), "--precision", "int8"], "expected --precision fp16 or fp32, got 'int8'"),
        ([str(tiny_model_dir), "--precision", "fp16"], "expected --precision only with a converted folder"),
    ]
    for argv, message in cases:
        code, _, err = run_cli(["generate", *argv, *base], capsys)
        assert code == 2 and message in " ".join(err.split()), err
    assert not (tmp_path / "x.png").exists()
