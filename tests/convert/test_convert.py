import json

import numpy as np
import pytest

from snapfusion_coreml.contracts.pipeline_json import Compression
from snapfusion_coreml.convert import ConvertOptions, convert_pipeline, parse_compression, pipeline as convert_module
from snapfusion_coreml.convert.kmeans import kmeans_1d
from snapfusion_coreml.digests import tree_sha256
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.package_info import inspect_path
from snapfusion_coreml.schedule import timesteps

pytestmark = [pytest.mark.xdist_group("test_convert")]  # its module fixtures are built once, on one worker


@pytest.fixture(scope="module")
def converted(tiny_pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp("convert") / "out"
    summary = convert_pipeline(tiny_pipeline, ConvertOptions(out=out))
    return out, summary


@pytest.mark.slow
def test_output_folder_follows_the_contract(converted, tiny_pipeline):
    out, summary = converted
    names = sorted(p.name for p in out.iterdir())
    assert names == ["TextEncoder.mlpackage", "Unet.mlpackage", "VAEDecoder.mlpackage", "merges.txt", "pipeline.json", "vocab.json"]
    manifest = json.loads((out / "pipeline.json").read_text())
    assert manifest == summary.pipeline_manifest.to_dict()
    assert manifest["format_version"] == 3 and manifest["prediction_type"] == "v_prediction"
    assert manifest["sampler"]["timesteps"] == timesteps(tiny_pipeline.scheduler, tiny_pipeline.defaults.steps)
    assert (manifest["sampler"]["name"], manifest["sampler"]["previous_timesteps"][-1]) == ("ddim", -1)
    assert manifest["guidance"] == {"default_scale": 7.5, "unet_batch": 2, "embedding": None}
    assert manifest["latent"] == {"channels": 4, "height": 8, "width": 8, "scale_factor": 0.18215}
    assert manifest["image"] == {"height": 64, "width": 64} and "image_size" not in manifest
    assert manifest["source"]["loras"] == [] and manifest["source"]["unet_parameters"] == tiny_pipeline.unet.num_parameters()
    unet = manifest["components"]["unet"]
    assert [i["name"] for i in unet["inputs"]] == ["sample", "timestep", "encoder_hidden_states"]
    assert unet["inputs"][2]["shape"] == [2, 32, 1, 77] and unet["outputs"] == [{"name": "noise_pred", "shape": [2, 4, 8, 8], "dtype": "float32"}]
    assert manifest["components"]["decoder"]["outputs"][0]["shape"] == [1, 3, 64, 64]
    assert manifest["components"]["text_encoder"]["inputs"] == [{"name": "input_ids", "shape": [1, 77], "dtype": "float32"}]
    for component in manifest["components"].values():
        assert component["sha256"] == tree_sha256(out / component["file"])
        assert component["precision"] == "float16" and component["compression"] == {"mode": "none"}
    assert json.loads((out / "vocab.json").read_text())["<|endoftext|>"] == 49407


def test_inspect_reports_io_and_ops(converted):
    out, _ = converted
    info = inspect_path(out)
    unet = next(p for p in info["packages"] if p["path"].endswith("Unet.mlpackage"))
    assert unet["deployment_target"] == "iOS16" and unet["palettized_share"] == 0.0
    assert unet["op_counts"]["einsum"] > 0 and unet["op_counts"]["conv"] > 0  # split-einsum attention, 1x1 convs
    assert [o["name"] for o in unet["outputs"]] == ["noise_pred"]
    assert info["pipeline"]["sampler"]["default_steps"] == 4


@pytest.mark.slow
def test_palettized_chunked_ios18_unet(micro_pipeline, tmp_path):
    options = ConvertOptions(out=tmp_path / "o", components=("unet",), compression=parse_compression("4", "uniform"),
                             target="iOS18", chunk_unet=True, unet_batch=1, attention="original")
    summary = convert_pipeline(micro_pipeline, options)  # chunking and palettes do not depend on the layout's size
    unet = summary.pipeline_manifest.to_dict()["components"]["unet"]
    assert unet["chunks"] == ["UnetChunk1.mlpackage", "UnetChunk2.mlpackage"] and unet["file"] is None
    assert unet["compression"]["granularity"] == "per_grouped_channel" and unet["attention"] == "original"
    assert unet["inputs"][0]["shape"] == [1, 4, 8, 8]
    info = inspect_path(tmp_path / "o")
    assert {p["deployment_target"] for p in info["packages"]} == {"iOS18"}
    assert sum(p["palettized_bits"].get("4", 0) for p in info["packages"]) > 0


def test_kmeans_1d_is_optimal_on_separable_data():
    values = np.array([0.0] * 5 + [1.0] * 3 + [10.0, 10.5, 11.0] * 2, dtype=np.float16)
    lut, idx = kmeans_1d(values, bits=1)
    assert sorted(lut.tolist()) == [pytest.approx(0.375), pytest.approx(10.5)]
    rng = np.random.default_rng(0)
    w = (rng.standard_normal(50000) * 0.02).astype(np.float16)
    lut, idx = kmeans_1d(w, bits=4)
    mse = float(np.mean((lut[idx].astype(np.float64) - w) ** 2))
    uniform = np.linspace(w.min(), w.max(), 16)
    mse_uniform = float(np.mean((uniform[np.abs(w[:, None] - uniform[None]).argmin(1)] - w) ** 2))
    assert mse < 0.6 * mse_uniform


@pytest.mark.parametrize("value, method, message", [
    ("5", "kmeans", "expected --palettize none, 4, 6, 8 or mixed:BITS"),
    ("mixed:9", "kmeans", "mixed:BITS with 2 <= BITS <= 8"),
    ("6", "median", "--palettize-mode kmeans or uniform"),
])
def test_bad_compression_options(value, method, message):
    with pytest.raises(UserError, match=message):
        parse_compression(value, method)


def test_bad_convert_options(tmp_path):
    with pytest.raises(UserError, match="--components"):
        ConvertOptions(out=tmp_path, components=("unet", "vae"))
    with pytest.raises(UserError, match="--unet-batch 1 or 2"):
        ConvertOptions(out=tmp_path, unet_batch=3)
    with pytest.raises(UserError, match="--target"):
        ConvertOptions(out=tmp_path, target="iOS15")


def test_image_size_the_unet_cannot_take(tiny_pipeline, tmp_path):
    with pytest.raises(UserError, match="multiples of 16 for this UNet"):
        convert_pipeline(tiny_pipeline, ConvertOptions(out=tmp_path / "o", image_size=72, components=("decoder",)))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("failure", [RuntimeError("boom"), KeyboardInterrupt(), OSError(28, "No space left on device")])
def test_failure_mid_write_keeps_previous_output(tiny_pipeline, tmp_path, monkeypatch, failure):
    out = tmp_path / "o"
    out.mkdir()
    (out / "pipeline.json").write_text('{"previous": true}')
    calls = []

    def fail_on_second(spec, options, tmp, source, mixed_recipe=None):
        calls.append(spec.key)
        (tmp / spec.file).mkdir()
        if len(calls) == 2:
            raise failure
        return convert_module.ComponentResult(spec.key, [spec.file], 0.0, 0, Compression("none"))

    monkeypatch.setattr(convert_module, "convert_component", fail_on_second)
    expected = UserError if isinstance(failure, OSError) else type(failure)
    with pytest.raises(expected):
        convert_pipeline(tiny_pipeline, ConvertOptions(out=out, overwrite=True))
    assert json.loads((out / "pipeline.json").read_text()) == {"previous": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o"]  # no partial folder left behind


def test_existing_output_needs_overwrite(tiny_pipeline, tmp_path):
    (tmp_path / "o").mkdir()
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        convert_pipeline(tiny_pipeline, ConvertOptions(out=tmp_path / "o", components=("decoder",)))


@pytest.mark.slow
def test_token_embedding_stays_unpalettized(tmp_path):
    """The bundled model's text encoder: every linear weight palettized, the gather's table not."""
    from snapfusion_coreml.assets import default_model_dir
    from snapfusion_coreml.interpreter.program import load_program

    options = ConvertOptions(out=tmp_path / "te", components=("text_encoder",), compression=parse_compression("8", "kmeans"))
    convert_pipeline(str(default_model_dir()), options)
    info = inspect_path(tmp_path / "te")["packages"][0]
    assert info["palettized_bits"] == {"8": 2 * (4 * 64 * 64 + 2 * 64 * 256)}  # 2 layers: q, k, v, out, fc1, fc2
    assert info["op_counts"]["gather"] >= 1 and info["palettized_share"] < 0.1  # 49408 x 64 table stays fp16
    assert load_program(tmp_path / "te" / "TextEncoder.mlpackage").op_counts()["constexpr_lut_to_dense"] == 12


def test_palettize_per_component():
    from snapfusion_coreml.convert import parse_palettize

    default, overrides = parse_palettize("6", "kmeans")
    assert default.bits == 6 and overrides == ()
    default, overrides = parse_palettize("text_encoder=8, unet=mixed:4.5", "uniform")
    assert not default.enabled and dict(overrides)["unet"].mode == "mixed" and dict(overrides)["text_encoder"].bits == 8
    options = ConvertOptions(out="x", compression=parse_compression("6", "kmeans"),
                             component_compression=(("decoder", parse_compression("8", "kmeans")),))
    assert options.compression_for("decoder", palettized_by_default=False).bits == 8
    assert options.compression_for("unet", palettized_by_default=True).bits == 6
    with pytest.raises(UserError, match="COMPONENT=SPEC"):
        parse_palettize("vae=8", "kmeans")
    with pytest.raises(UserError, match="to name converted components"):
        ConvertOptions(out="x", components=("unet",), component_compression=overrides)
