"""Non-square images end to end: --image-size HEIGHTxWIDTH through convert, verify and generate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cli_runner import run_cli
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.image_size import ImageSize, latent_size, parse_image_size

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("text, expected", [
    ("512", ImageSize(512, 512)), ("512x768", ImageSize(512, 768)), (" 64 X 96 ", ImageSize(64, 96)), (None, None),
])
def test_parse_image_size(text, expected):
    assert parse_image_size(text) == expected


@pytest.mark.parametrize("text, message", [
    ("0", "sides > 0"), ("64x0", "sides > 0"), ("-64", "SIDE or HEIGHTxWIDTH"), ("64x", "SIDE or HEIGHTxWIDTH"),
    ("64x96x2", "SIDE or HEIGHTxWIDTH"), ("wide", "SIDE or HEIGHTxWIDTH"),
])
def test_bad_image_size_text(text, message):
    with pytest.raises(UserError, match=message):
        parse_image_size(text)


def test_latent_size_needs_each_side_divisible():
    assert latent_size(ImageSize(512, 768), 8, 4) == (64, 96)
    with pytest.raises(UserError, match="multiples of 64 .* got 512x744"):
        latent_size(ImageSize(512, 744), 8, 4)


@pytest.mark.slow
def test_64x96_convert_verify_generate(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(["convert", str(tiny_model_dir), "-o", str(out), "--image-size", "64x96"], capsys)
    assert code == 0, err
    manifest = json.loads((out / "pipeline.json").read_text())
    assert manifest["image"] == {"height": 64, "width": 96}
    assert (manifest["latent"]["height"], manifest["latent"]["width"]) == (8, 12)
    components = manifest["components"]
    assert components["unet"]["inputs"][0]["shape"] == [2, 4, 8, 12]
    assert components["unet"]["outputs"][0]["shape"] == [2, 4, 8, 12]
    assert components["decoder"]["outputs"][0]["shape"] == [1, 3, 64, 96]

    code, stdout, err = run_cli(["verify", str(out), "--modes", "fp32,fp16", "--json"], capsys)
    assert code == 0, stdout + err
    shapes = {(c["component"], c["output"]): c["shape"] for c in json.loads(stdout)["checks"]}
    assert shapes[("unet", "noise_pred")] == [2, 4, 8, 12] and shapes[("decoder", "image")] == [1, 3, 64, 96]

    code, _, err = run_cli(["inspect", str(out)], capsys)
    assert code == 0 and "64x96 px" in _

    png = tmp_path / "wide.png"
    code, _, err = run_cli(["generate", str(tiny_model_dir), "--prompt", "a red fox", "--steps", "2",
                            "--image-size", "64x96", "-o", str(png)], capsys)
    assert code == 0, err
    image = np.asarray(Image.open(png))
    assert image.shape == (64, 96, 3) and image.std() > 0


@pytest.mark.parametrize("command", ["convert", "generate", "export-blocks"])
@pytest.mark.parametrize("size, message", [("64x72", "got 64x72"), ("0x64", "sides > 0")])
def test_sizes_the_unet_cannot_take_are_refused_before_loading(tiny_model_dir, tmp_path, capsys, monkeypatch,
                                                               command, size, message):
    from snapfusion_coreml.modeling import loading

    def no_weights(*args, **kwargs):
        raise AssertionError("weights were read before the image size was checked")

    monkeypatch.setattr(loading, "load_unet", no_weights)
    monkeypatch.setattr(loading, "load_text_encoder", no_weights)
    target = str(tmp_path / ("o.png" if command == "generate" else "o"))
    extra = ["--prompt", "x"] if command == "generate" else []
    code, _, err = run_cli([command, str(tiny_model_dir), "-o", target, "--image-size", size, *extra], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0] and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []
