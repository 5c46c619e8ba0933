"""Several image sizes in one folder: `convert --image-size 64x64,64x96,96x64` writes multifunction
packages (one fixed-shape function per size, iOS 18) whose functions share their weights, and
generate, verify, inspect and interpret run any listed size."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli_runner import run_cli
from snapfusion_coreml.convert import ConvertOptions
from snapfusion_coreml.digests import tree_sha256
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.image_size import ImageSize, parse_image_sizes

pytestmark = pytest.mark.usefixtures("one_thread")

SIZES = ("64x64", "64x96", "96x64")  # latents 8x8, 8x12, 12x8 (the tiny UNet's latent divisor is 2)
FUNCTIONS = ["image_64x64", "image_64x96", "image_96x64"]
WEIGHTS = Path("Data") / "com.apple.CoreML" / "weights" / "weight.bin"
SPEC = Path("Data") / "com.apple.CoreML" / "model.mlmodel"


def _convert(capsys, model: Path, out: Path, *args: str) -> Path:
    code, _, err = run_cli(["convert", str(model), "-o", str(out), *args], capsys)
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def folders(convert_each, micro_model_dir):
    """The micro model (the tiny pipeline with a smaller UNet: what is checked here does not depend
    on the layout's size) converted once at three sizes and once per size alone (iOS 18, 6-bit
    palettes for the text encoder and UNet), as `convert --image-size 64x64,64x96,96x64 --palettize 6` does."""
    from snapfusion_coreml.convert import parse_palettize

    six, _ = parse_palettize("6", "kmeans")
    several, *single = convert_each(micro_model_dir, [dict(image_size=",".join(SIZES), compression=six)] +
                                    [dict(image_size=size, compression=six, target="iOS18") for size in SIZES])
    return several, dict(zip(SIZES, single))


def test_size_lists_parse_and_refuse_in_one_line():
    assert parse_image_sizes("64x64, 64x96,96x64") == (ImageSize(64, 64), ImageSize(64, 96), ImageSize(96, 64))
    assert parse_image_sizes("512") == (ImageSize(512, 512),)
    for text, message in (("64,,96", "SIZE[,SIZE...]"), ("64x64,", "SIZE[,SIZE...]"), ("64,64x96,64x64", "64x64 more than once"),
                          ("64x64,wide", "SIDE or HEIGHTxWIDTH")):
        with pytest.raises(UserError, match=message):
            parse_image_sizes(text)


def test_a_size_list_picks_ios18_and_refuses_older_targets(tmp_path):
    options = ConvertOptions(out=tmp_path, image_size="64x64,64x96")
    assert options.target == "iOS18" and options.multifunction and options.image_size == ImageSize(64, 64)
    assert ConvertOptions(out=tmp_path, image_size="64x96").target == "iOS16"  # one size: unchanged
    assert not ConvertOptions(out=tmp_path, image_size="64x96").multifunction
    with pytest.raises(UserError, match=r"^expected --target iOS18 \(or none\) with several --image-size sizes: "
                                        r"multifunction packages need iOS 18 / macOS 15 .*got --target iOS17$"):
        ConvertOptions(out=tmp_path, image_size=(ImageSize(64, 64), ImageSize(64, 96)), target="iOS17")
    with pytest.raises(UserError, match="expected one --image-size with --format coreai"):
        ConvertOptions(out=tmp_path, image_size="64x64,64x96", format="coreai")


@pytest.mark.parametrize("args, message", [
    (["--image-size", "64x64,64x96", "--target", "iOS16"], "multifunction packages need iOS 18 / macOS 15"),
    (["--image-size", "64x64,64x96,64x64"], "expected distinct --image-size sizes, got 64x64 more than once"),
    (["--image-size", "64x64,,64x96"], "expected --image-size SIZE[,SIZE...]"),
    (["--image-size", "64x64,64x72"], "got 64x72"),  # a size the UNet cannot take
    (["--image-size", "64x64,64x96", "--format", "coreai"], "expected one --image-size with --format coreai"),
])
def test_convert_refuses_bad_size_lists_before_loading(micro_model_dir, tmp_path, capsys, monkeypatch, args, message):
    from snapfusion_coreml.modeling import loading

    def no_weights(*a, **k):
        raise AssertionError("weights were read before the sizes were checked")

    monkeypatch.setattr(loading, "load_unet", no_weights)
    code, _, err = run_cli(["convert", str(micro_model_dir), "-o", str(tmp_path / "o"), *args], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and message in errors[0] and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_one_multifunction_package_per_size_dependent_component(folders):
    several, _ = folders
    from snapfusion_coreml.coreml.package import package_functions

    manifest = json.loads((several / "pipeline.json").read_text())
    assert manifest["format_version"] == 3
    assert [s["function"] for s in manifest["sizes"]] == FUNCTIONS
    assert [(s["latent"]["height"], s["latent"]["width"]) for s in manifest["sizes"]] == [(8, 8), (8, 12), (12, 8)]
    assert {c["deployment_target"] for c in manifest["components"].values()} == {"iOS18"}
    assert manifest["components"]["unet"]["inputs"][0]["shape"] == [2, 4, 8, 8]  # the default size
    assert package_functions(several / "Unet.mlpackage") == (FUNCTIONS, "image_64x64")
    assert package_functions(several / "VAEDecoder.mlpackage") == (FUNCTIONS, "image_64x64")
    assert package_functions(several / "TextEncoder.mlpackage") == (["main"], "main")
    for component in manifest["components"].values():  # the packages as written, and normalised
        assert component["sha256"] == tree_sha256(several / component["file"])
        assert json.loads((several / component["file"] / "Manifest.json").read_text())["fileFormatVersion"] == "1.0.0"


def test_functions_share_their_weights(folders):
    """The palettized weights are stored once: the Unet package grows only by each extra function's
    program text (which, for the tiny model, is a third of the package; a full-size UNet's weights
    are hundreds of MB against a program text of a few MB)."""
    several, single = folders
    one = single["64x64"]
    for name in ("Unet.mlpackage", "VAEDecoder.mlpackage"):
        shared = (several / name / WEIGHTS).stat().st_size
        alone = (one / name / WEIGHTS).stat().st_size
        assert shared <= alone * 1.001, (name, shared, alone)
        program = (one / name / SPEC).stat().st_size
        total = sum(p.stat().st_size for p in (several / name).rglob("*") if p.is_file())
        single_total = sum(p.stat().st_size for p in (one / name).rglob("*") if p.is_file())
        assert total <= single_total + (len(SIZES) - 1) * program * 1.02, (name, total, single_total, program)
    # the same palettized weights in every single-size conversion: deterministic k-means
    assert len({(single[s] / "Unet.mlpackage" / WEIGHTS).read_bytes() for s in SIZES}) == 1


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.slow
def test_each_size_draws_the_image_of_its_single_size_conversion(folders, tmp_path, capsys, size):
    several, single = folders
    images = []
    for folder in (several, single[size]):
        png = tmp_path / f"{folder.name}.png"
        code, _, err = run_cli(["generate", str(folder), "--prompt", "a red fox", "--steps", "2", "--image-size", size,
                                "-o", str(png)], capsys)
        assert code == 0, err
        images.append(np.asarray(Image.open(png)))
    height, width = map(int, size.split("x"))
    assert images[0].shape == (height, width, 3) and images[0].std() > 0
    assert np.array_equal(images[0], images[1])  # identical: the same program and weights at that size


def test_generate_refuses_a_size_the_folder_lacks(folders, tmp_path, capsys):
    several, _ = folders
    code, _, err = run_cli(["generate", str(several), "--prompt", "x", "--image-size", "96x96", "-o", str(tmp_path / "x.png")],
                           capsys)
    errors = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and errors == [f"error: expected an image size this folder was converted for (64x64, 64x96, 96x64), "
                                    f"got 96x96 (in {several / 'pipeline.json'})"], err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_verify_checks_every_function_and_inspect_lists_them(folders, capsys):
    several, _ = folders
    code, stdout, err = run_cli(["verify", str(several), "--modes", "fp16", "--json"], capsys)
    assert code == 0, stdout + err
    checks = json.loads(stdout)["checks"]
    shapes = {(c["component"], c["function"]): c["shape"] for c in checks if c["output"] != "pooled_outputs"}
    assert shapes == {("text_encoder", "main"): [1, 77, 32], ("unet", "image_64x64"): [2, 4, 8, 8],
                      ("unet", "image_64x96"): [2, 4, 8, 12], ("unet", "image_96x64"): [2, 4, 12, 8],
                      ("decoder", "image_64x64"): [1, 3, 64, 64], ("decoder", "image_64x96"): [1, 3, 64, 96],
                      ("decoder", "image_96x64"): [1, 3, 96, 64]}
    assert all(c["ok"] for c in checks)
    code, stdout, _ = run_cli(["inspect", str(several)], capsys)
    assert code == 0 and "sizes: 64x64 (image_64x64), 64x96 (image_64x96), 96x64 (image_96x64)" in stdout
    assert "functions: image_64x64 (default) (2, 4, 8, 8)" in stdout


def test_the_interpret_server_runs_a_named_function(folders):
    from snapfusion_coreml.interpreter.folder import FolderRunner
    from snapfusion_coreml.interpreter.server import serve

    several, single = folders
    folder = FolderRunner(several)
    z = np.random.default_rng(0).standard_normal((1, 4, 12, 8)).astype(np.float32)

    def header(**fields) -> bytes:
        return (json.dumps({"component": "decoder", "inputs": [{"name": "z", "dtype": "float32", "shape": [1, 4, 12, 8]}],
                            **fields}) + "\n").encode() + z.tobytes()

    stdin = io.BytesIO(header(function="image_96x64") + header() + header(function="image_32x32"))
    stdout = io.BytesIO()
    assert serve(folder, stdin, stdout) == 3
    stdout.seek(0)
    first = json.loads(stdout.readline())
    assert first["outputs"] == [{"name": "image", "dtype": "float32", "shape": [1, 3, 96, 64]}]
    image = np.frombuffer(stdout.read(3 * 96 * 64 * 4), "<f4").reshape(1, 3, 96, 64)
    alone = FolderRunner(single["96x64"]).run("decoder", {"z": z})["image"]
    assert np.array_equal(image, alone)
    assert json.loads(stdout.readline()) == {"error": "expected decoder input z of shape [1, 4, 8, 8], got [1, 4, 12, 8]"}
    assert json.loads(stdout.readline()) == {
        "error": "expected function from image_64x64, image_64x96, image_96x64, got 'image_32x32'"}


@pytest.mark.slow
def test_chunked_multifunction_conversions_are_byte_reproducible(micro_model_dir, tmp_path, capsys):
    args = ["--components", "unet", "--chunk-unet", "--image-size", "64x64,64x96"]  # fp16: palettizing is another test's
    first = _convert(capsys, micro_model_dir, tmp_path / "a", *args)
    second = _convert(capsys, micro_model_dir, tmp_path / "b", *args)
    unet = json.loads((first / "pipeline.json").read_text())["components"]["unet"]
    assert unet["chunks"] == ["UnetChunk1.mlpackage", "UnetChunk2.mlpackage"]
    for name in unet["chunks"]:
        assert tree_sha256(first / name) == tree_sha256(second / name)
    assert json.loads((second / "pipeline.json").read_text())["components"]["unet"]["sha256"] == unet["sha256"]
    from snapfusion_coreml.interpreter.folder import FolderRunner
    from snapfusion_coreml.verify.reference import component_inputs

    folder = FolderRunner(first)
    inputs = component_inputs("unet", folder.declared_inputs("unet"), first)
    inputs["sample"] = np.random.default_rng(1).standard_normal((2, 4, 8, 12)).astype(np.float32)
    out = folder.run("unet", inputs, "image_64x96")["noise_pred"]
    assert out.shape == (2, 4, 8, 12) and np.isfinite(out).all()


@pytest.fixture(scope="module")
def wide_unet_folder(tmp_path_factory, diffusers_folder) -> Path:
    """The tiny diffusers folder with a UNet whose weights outweigh its program text, as in every real
    UNet (SD-1.5: 1.7 GB of float16 weights against a few MB of program): channels 128 and 256,
    one attention head (each head is its own einsums in the program: more heads, more program text)."""
    from diffusers import UNet2DConditionModel

    root = diffusers_folder[0]
    out = tmp_path_factory.mktemp("wide") / "wide-sd"
    shutil.copytree(root, out, ignore=shutil.ignore_patterns("unet"))
    torch.manual_seed(5)
    unet = UNet2DConditionModel(block_out_channels=(128, 256), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=1, norm_num_groups=32, sample_size=8, layers_per_block=1)
    unet.save_pretrained(out / "unet")
    return out


@pytest.mark.slow
def test_three_sizes_cost_under_a_tenth_more_than_one(wide_unet_folder, tmp_path, capsys):
    """The 3-size Unet package is at most 1.1x the one-size package: the weights are stored once."""
    args = ["--components", "unet", "--target", "iOS18"]
    several = _convert(capsys, wide_unet_folder, tmp_path / "several", *args, "--image-size", ",".join(SIZES))
    one = _convert(capsys, wide_unet_folder, tmp_path / "one", *args, "--image-size", SIZES[0])

    def size(folder: Path) -> int:
        return sum(p.stat().st_size for p in (folder / "Unet.mlpackage").rglob("*") if p.is_file())

    ratio = size(several) / size(one)
    print(f"Unet.mlpackage: 3 sizes {size(several)} B, 1 size {size(one)} B, ratio {ratio:.3f}")
    assert size(one) > 8 * (one / "Unet.mlpackage" / SPEC).stat().st_size  # the weights dominate, as in real UNets
    assert ratio <= 1.1, ratio
