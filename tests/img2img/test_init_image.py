"""The init image and strength of `generate --init-image PNG --strength S`: bad files and values
are one line and exit 2 before any model is read; any PIL mode is converted to RGB; the crop and
resize rule of docs/contracts.md (tests/test_cli_inputs.py: the output may not replace it)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from cli_runner import run_cli
from snapfusion_coreml.image_size import ImageSize
from snapfusion_coreml.init_image import fit_init_image, init_image_tensor, open_init_image
from tests.img2img.images import init_image

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread is fastest on a shared machine



def _png(width: int, height: int, data: bytes | None = None) -> bytes:
    """A PNG whose IHDR says width x height (RGB, 8 bits), with `data` as its one IDAT chunk."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    idat = chunk(b"IDAT", data) if data is not None else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + idat + chunk(b"IEND", b"")


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    good = tmp / "good.png"
    init_image(32, 32).save(good)
    truncated = tmp / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    text = tmp / "notes.png"
    text.write_text("not an image\n")
    empty = tmp / "empty.png"
    empty.write_bytes(b"")
    zero = tmp / "zero.png"
    zero.write_bytes(_png(0, 16))
    huge = tmp / "huge.png"
    huge.write_bytes(_png(8000, 7000, zlib.compress(b"\0" * 64)))
    bomb = tmp / "bomb.png"
    bomb.write_bytes(_png(20000, 20000, zlib.compress(b"\0" * 64)))
    folder = tmp / "folder.png"
    folder.mkdir()
    return {
        "truncated": (truncated, "error: expected a readable image for --init-image, got a damaged one: "),
        "not an image": (text, "error: expected an image file for --init-image (PNG, JPEG, ...), got a file PIL cannot identify"),
        "empty": (empty, "error: expected an image file for --init-image, got an empty file"),
        "zero width": (zero, "error: expected an image file for --init-image (PNG, JPEG, ...), got a file PIL cannot identify"),
        "huge": (huge, "error: expected an init image of at most 50 megapixels, got 8000x7000"),
        "bomb": (bomb, "error: expected an init image of at most 50 megapixels, got one PIL refuses as a decompression bomb"),
        "missing": (tmp / "missing.png", f"error: init image not found: {tmp / 'missing.png'}"),
        "folder": (folder, f"error: expected --init-image to be an image file, got a folder: {folder}"),
    }


@pytest.mark.parametrize("case", ["truncated", "not an image", "empty", "zero width", "huge", "bomb", "missing", "folder"])
def test_bad_init_images_are_one_line(case, tiny_model_dir, tmp_path, capsys):
    path, start = _bad_files(tmp_path)[case]
    out = tmp_path / "o.png"
    code, _, err = run_cli(["generate", str(tiny_model_dir), "--prompt", "x", "--init-image", str(path), "-o", str(out)], capsys)
    assert code == 2 and not out.exists()
    assert _one_line(err).startswith(start), err


@pytest.mark.parametrize("argv, message", [
    (["--strength", "0"], "error: expected --strength in (0, 1], got 0.0"),
    (["--strength", "-0.5"], "error: expected --strength in (0, 1], got -0.5"),
    (["--strength", "1.5"], "error: expected --strength in (0, 1], got 1.5"),
    (["--strength", "nan"], "error: expected --strength in (0, 1], got nan"),
    (["--strength", "0.2", "--steps", "4"], "error: expected --strength 0.2 with --steps 4 to leave at least one step "
                                            "(int(steps * strength) = 0): raise the strength or the steps"),
    (["--strength", "0.5", "--init-image", None, "--steps", "1"],
     "error: expected --strength 0.5 with --steps 1 to leave at least one step (int(steps * strength) = 0): "
     "raise the strength or the steps"),
])
def test_bad_strengths_are_one_line(argv, message, diffusers_folder, tmp_path, capsys):
    start = tmp_path / "start.png"
    init_image(64, 64).save(start)
    argv = [str(start) if a is None else a for a in argv]
    if "--init-image" not in argv:
        argv = ["--init-image", str(start), *argv]
    out = tmp_path / "o.png"
    code, _, err = run_cli(["generate", str(diffusers_folder[0]), "--prompt", "x", *argv, "-o", str(out)], capsys)
    assert code == 2 and not out.exists()
    assert _one_line(err) == message


def test_strength_without_init_image_and_models_without_an_encoder(tiny_model_dir, tmp_path, capsys):
    start = tmp_path / "start.png"
    init_image(64, 64).save(start)
    out = tmp_path / "o.png"
    code, _, err = run_cli(["generate", str(tiny_model_dir), "--prompt", "x", "--strength", "0.5", "-o", str(out)], capsys)
    assert code == 2 and _one_line(err) == "error: expected --strength only with --init-image, got --strength 0.5 alone"
    code, _, err = run_cli(["generate", str(tiny_model_dir), "--prompt", "x", "--init-image", str(start), "-o", str(out)], capsys)
    assert code == 2 and not out.exists()
    assert _one_line(err) == f"error: expected a model with a VAE encoder for --init-image, got {tiny_model_dir} without one"


@pytest.mark.slow
def test_a_converted_folder_without_an_encoder_says_how_to_get_one(converted_with_encoder, tmp_path, capsys):
    import json
    import shutil

    out_dir = tmp_path / "out"
    shutil.copytree(converted_with_encoder, out_dir)
    data = json.loads((out_dir / "pipeline.json").read_text())
    del data["components"]["encoder"]
    data["format_version"] = 2  # what converters before the encoder wrote
    (out_dir / "pipeline.json").write_text(json.dumps(data))
    start = tmp_path / "start.png"
    init_image(64, 64).save(start)
    code, _, err = run_cli(["generate", str(out_dir), "--prompt", "x", "--init-image", str(start), "-o", str(tmp_path / "o.png")],
                           capsys)
    assert code == 2
    assert _one_line(err) == (f"error: expected a VAE encoder in {out_dir} for --init-image, found none: "
                              "convert with --components including encoder")


@pytest.mark.parametrize("mode", ["P", "LA", "L", "RGBA", "CMYK", "I;16", "1"])
def test_every_mode_is_read_as_rgb(mode, tmp_path):
    """Palette, gray, alpha and CMYK files open as RGB (alpha dropped, not composited)."""
    rgb = init_image(24, 16)
    image = rgb.convert(mode) if mode != "I;16" else rgb.convert("L").convert("I;16")
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.tiff" if mode == "I;16" else "x.png")
    image.save(path)
    opened = open_init_image(path)
    assert opened.mode == "RGB" and opened.size == (24, 16)
    if mode in ("RGBA",):
        assert np.array_equal(np.asarray(opened), np.asarray(rgb))  # alpha dropped, colour kept


def test_center_crop_and_lanczos_resize():
    from PIL import Image

    wide = init_image(100, 40)  # to 64x64: the middle 40 columns (left 30), then Lanczos to 64x64
    fitted = fit_init_image(wide, ImageSize(64, 64))
    expected = wide.crop((30, 0, 70, 40)).resize((64, 64), Image.LANCZOS)
    assert fitted.size == (64, 64) and np.array_equal(np.asarray(fitted), np.asarray(expected))
    tall = init_image(30, 101)  # to 64 high x 96 wide: rows floor(30 * 64 / 96) = 20 from top floor((101 - 20) / 2) = 40
    expected = tall.crop((0, 40, 30, 60)).resize((96, 64), Image.LANCZOS)
    assert np.array_equal(np.asarray(fit_init_image(tall, ImageSize(64, 96))), np.asarray(expected))
    same = init_image(96, 64)
    assert np.array_equal(np.asarray(fit_init_image(same, ImageSize(64, 96))), np.asarray(same))  # untouched
    pixels = init_image_tensor(same, ImageSize(64, 96))
    assert pixels.shape == (1, 3, 64, 96) and pixels.dtype.is_floating_point
    raw = np.asarray(same, dtype=np.float32)
    assert np.array_equal(pixels[0].permute(1, 2, 0).numpy(), 2 * (raw / np.float32(255)) - 1)  # diffusers' preprocess
