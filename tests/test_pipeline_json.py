"""pipeline.json as typed records (snapfusion_coreml/contracts/pipeline_json.py) against the golden samples the
Swift tests read too (tests/golden/pipelines.json), a folder written by `convert`, and bad input: one
"expected X, got Y (in FILE)" line, exit 2 from the CLI, the file left as it was."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from snapfusion_coreml.contracts.pipeline_json import PIPELINE_JSON, PipelineManifest
from snapfusion_coreml.errors import UserError
from tests.cli_runner import run_cli

GOLDEN = Path(__file__).resolve().parent / "golden"
PIPELINES = json.loads((GOLDEN / "pipelines.json").read_text())["cases"]


def _case(name: str) -> dict:
    return copy.deepcopy(next(c["pipeline"] for c in PIPELINES if c["name"] == name))


def with_documented_defaults(data: dict) -> dict:
    """`data` as to_dict writes it back: the defaults listed in pipeline_json's docstring filled in."""
    out = copy.deepcopy(data)
    latent = out["latent"]
    side = out.pop("image_size", None)
    out.setdefault("image", {"height": side, "width": side} if side else
                   {"height": 8 * latent["height"], "width": 8 * latent["width"]})
    out.setdefault("source", {}).setdefault("loras", [])
    out["tokenizer"].setdefault("pad_token_id", out["tokenizer"]["eos_token_id"])
    for component in out["components"].values():
        for key in ("file", "chunks", "sha256", "precision", "deployment_target", "attention", "compression",
                    "size_bytes"):
            component.setdefault(key, None)
        component.setdefault("format", "coreml")  # folders before Core AI
    out["guidance"].setdefault("embedding", None)
    out.setdefault("sizes", None)  # one size (format_version 1 and 2 have no sizes)
    if out["format_version"] == 1:  # the DDIM record whose previous timestep is the next entry
        old = out["sampler"]
        out["sampler"] = {
            "name": "ddim", "scheduler_class": "DDIMScheduler", "default_steps": old["default_steps"],
            "timestep_spacing": old["timestep_spacing"], "steps_offset": old["steps_offset"], "timesteps": old["timesteps"],
            "previous_timesteps": old["timesteps"][1:] + [-1], "current_timesteps": None, "sigmas": None,
            "init_noise_sigma": 1.0, "scale_model_input": False, "final_alpha_cumprod": old["final_alpha_cumprod"],
            "eta": old["eta"], "clip_sample": None, "use_karras_sigmas": None, "final_sigmas_type": None,
            "solver_order": None, "solver_type": None, "lower_order_final": None, "euler_at_final": None,
            "original_inference_steps": None, "timestep_scaling": None}
    out["format_version"] = 3  # what to_dict writes
    return out


@pytest.mark.parametrize("case", [c for c in PIPELINES if c["expect"] in ("ok", "missingComponent")], ids=lambda c: c["name"])
def test_every_readable_golden_pipeline_json_round_trips(case):
    manifest = PipelineManifest.from_dict(case["pipeline"], case["name"])
    assert manifest.to_dict() == with_documented_defaults(case["pipeline"])
    assert PipelineManifest.from_dict(manifest.to_dict()) == manifest


@pytest.mark.parametrize("case", [c for c in PIPELINES if c["expect"] not in ("ok", "missingComponent")],
                         ids=lambda c: c["name"])
def test_every_unreadable_golden_pipeline_json_gives_one_line(case):
    with pytest.raises(UserError) as info:
        PipelineManifest.from_dict(case["pipeline"], "OUT/pipeline.json")
    message = str(info.value)
    assert message.startswith("expected ") and message.endswith("(in OUT/pipeline.json)") and "\n" not in message


def test_older_forms_read_as_documented():
    legacy = PipelineManifest.from_dict(_case("legacy_no_loras_no_pad_id"))
    assert (legacy.image.height, legacy.image.width) == (64, 64)  # "image_size": 64
    assert legacy.source.loras == () and legacy.tokenizer.pad_token_id == legacy.tokenizer.eos_token_id == 49407
    assert legacy.component("text_encoder").input("input_ids").dtype == "int32"
    neither = _case("valid")
    del neither["image"]
    assert PipelineManifest.from_dict(neither).image.to_dict() == {"height": 64, "width": 64}  # 8 x latent
    lora = PipelineManifest.from_dict(_case("non_square_with_lora"))
    assert lora.latent.size == (8, 12) and lora.image.to_dict() == {"height": 64, "width": 96}
    assert lora.source.loras[0].scale == 0.8 and lora.source.loras[0].path == "/loras/style.safetensors"
    assert PipelineManifest.from_dict(_case("chunked_unet")).component("unet").files == [
        "UnetChunk1.mlpackage", "UnetChunk2.mlpackage"]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(format_version=4), "expected pipeline.json format_version 1 or 2 or 3, got 4"),
    (lambda d: d.pop("format_version"), "expected pipeline.json format_version 1 or 2 or 3, got none"),
    (lambda d: d.update(format_version=2) or d["sampler"].update(name="heun"),
     "expected sampler.name as ddim or pndm or dpmsolver++ or euler or euler_ancestral or lcm or tcd, got a string 'heun'"),
    (lambda d: d.update(format_version=2), "expected key sampler.previous_timesteps, got none"),
    (lambda d: d.update(format_version=2) or d["sampler"].update(name="euler", sigmas=[14.6, 0.0]),
     "expected sampler.sigmas as a list of 9 numbers (one per timestep and the final sigma)"),
    (lambda d: d.update(format_version=2) or d["sampler"].update(previous_timesteps=[1] * 8, timesteps=[999, 999, "x"]),
     "expected sampler.timesteps[2] as a finite number >= 0"),
    (lambda d: d["guidance"].update(embedding={"input": "w", "dim": 256}),
     "expected guidance.embedding.input as timestep_cond, got a string 'w'"),
    (lambda d: d.pop("sampler"), "expected key sampler, got none"),
    (lambda d: d["latent"].pop("scale_factor"), "expected key latent.scale_factor, got none"),
    (lambda d: d["latent"].update(height=-8), "expected latent.height as an integer >= 1, got a number -8"),
    (lambda d: d["latent"].update(width="8"), "expected latent.width as an integer >= 1, got a string '8'"),
    (lambda d: d["latent"].update(width=True), "expected latent.width as an integer >= 1, got a boolean True"),
    (lambda d: d.update(image={"height": 0, "width": 64}), "expected image.height as an integer >= 1, got a number 0"),
    (lambda d: d.update(image_size=-64) or d.pop("image"), "expected image_size as an integer >= 1, got a number -64"),
    (lambda d: d.update(tokenizer=[]), "expected tokenizer as a JSON object, got a list"),
    (lambda d: d["guidance"].update(unet_batch=3), "expected guidance.unet_batch as 1 or 2, got a number 3"),
    (lambda d: d["sampler"].update(timesteps=[]), "expected sampler.timesteps as a non-empty list in decreasing order"),
    (lambda d: d["sampler"].update(timesteps=[999, "874"]), "expected sampler.timesteps[1] as an integer >= 0"),
    (lambda d: d["noise_schedule"].update(beta_schedule="cosine"),
     "expected noise_schedule.beta_schedule as scaled_linear or linear, got a string 'cosine'"),
    (lambda d: d["components"].update(vae_encoder={}), "expected components from text_encoder, unet, decoder, encoder, got vae_encoder"),
    (lambda d: d["components"]["unet"]["inputs"][0].update(shape=[2, 4, -8, 8]),
     "expected components.unet.inputs[0].shape[2] as an integer >= 1, got a number -8"),
    (lambda d: d["components"]["unet"]["inputs"][1].update(dtype="float64"),
     "expected components.unet.inputs[1].dtype as float32 or float16 or int32, got a string 'float64'"),
    (lambda d: d["components"]["decoder"].pop("outputs"), "expected key components.decoder.outputs, got none"),
    (lambda d: d["components"]["unet"]["outputs"].append({"name": "noise_pred_2"}),
     "expected key components.unet.outputs[1].shape, got none"),
    (lambda d: d["components"]["decoder"].update(file=None), "expected components.decoder with a file or chunks, got neither"),
    (lambda d: d["source"].update(loras=[{"file": "a.safetensors"}]), "expected key source.loras[0].scale, got none"),
    # values no sampler can use (Python's parser reads NaN and Infinity, Swift's refuses them)
    (lambda d: d["guidance"].update(default_scale=float("nan")),
     "expected guidance.default_scale as a finite number, got a number nan"),
    (lambda d: d["latent"].update(scale_factor=float("inf")), "expected latent.scale_factor as a finite number, got a number inf"),
    (lambda d: d["latent"].update(scale_factor=0), "expected latent.scale_factor as a number > 0, got a number 0"),
    (lambda d: d["latent"].update(scale_factor=-0.18), "expected latent.scale_factor as a number > 0, got a number -0.18"),
    (lambda d: d["noise_schedule"].update(beta_end=1.5), "expected noise_schedule.beta_end as a number in (0, 1), got a number 1.5"),
    (lambda d: d["noise_schedule"].update(beta_start=0), "expected noise_schedule.beta_start as a number in (0, 1), got a number 0"),
    (lambda d: d["components"]["unet"].update(file="../../Unet.mlpackage"),
     "expected components.unet.file as a file name inside the folder (no / or \\, not . or ..), got a string '../../Unet"),
    (lambda d: d["components"]["unet"].update(file=None, chunks=["A.mlpackage", "/tmp/B.mlpackage"]),
     "expected components.unet.chunks as a list of file names inside the folder"),
    (lambda d: d["tokenizer"].update(merges=".."), "expected tokenizer.merges as a file name inside the folder"),
    (lambda d: d.update(sizes={"function": "main"}), "expected sizes as a list, got an object"),
    (lambda d: d.update(sizes=[{"function": "main", "image": {"height": 64, "width": 64},
                                "latent": {"height": 8, "width": 8}}]),
     "expected sizes[0].function as image_64x64, got a string 'main'"),
])
def test_bad_values_give_one_line_naming_key_and_file(edit, message):
    data = _case("valid")
    edit(data)
    with pytest.raises(UserError) as info:
        PipelineManifest.from_dict(data, "OUT/pipeline.json")
    assert str(info.value).startswith(message) and str(info.value).endswith(" (in OUT/pipeline.json)")
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_a_converted_folder_round_trips(tiny_converted_dir):
    written = json.loads((tiny_converted_dir / PIPELINE_JSON).read_text())
    manifest = PipelineManifest.read(tiny_converted_dir)
    assert manifest.to_dict() == written  # convert writes the current form: nothing to default
    assert manifest.tokenizer.max_length == 77 and manifest.component("text_encoder").inputs[0].shape == (1, 77)
    assert manifest.latent.image == manifest.image


def test_the_cli_refuses_a_bad_pipeline_json_with_exit_2_and_keeps_it(tiny_converted_dir, tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    for item in tiny_converted_dir.iterdir():
        (folder / item.name).symlink_to(item)
    data = json.loads((tiny_converted_dir / PIPELINE_JSON).read_text())
    data["latent"]["height"] = -1
    (folder / PIPELINE_JSON).unlink()
    (folder / PIPELINE_JSON).write_text(json.dumps(data))
    before = (folder / PIPELINE_JSON).read_text()
    for argv in (["inspect", str(folder)], ["verify", str(folder)], ["generate", str(folder), "--prompt", "a cat", "-o", str(tmp_path / "a.png")]):
        code, _, err = run_cli(argv, capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1, (argv, err)
        assert f"expected latent.height as an integer >= 1, got a number -1 (in {folder / PIPELINE_JSON})" in lines[0]
    assert (folder / PIPELINE_JSON).read_text() == before and not (tmp_path / "a.png").exists()


def test_several_sizes_read_as_documented():
    from snapfusion_coreml.contracts.pipeline_json import tensors_at
    from snapfusion_coreml.image_size import ImageSize

    manifest = PipelineManifest.from_dict(_case("v3_three_sizes"))
    assert [s.function for s in manifest.size_list] == ["image_64x64", "image_64x96", "image_96x64"]
    assert manifest.size(None).function == "image_64x64" and manifest.size(ImageSize(96, 64)).latent == (12, 8)
    with pytest.raises(UserError, match=r"^expected an image size this folder was converted for \(64x64, 64x96, 96x64\), "
                                        r"got 96x96 \(in OUT/pipeline.json\)$"):
        manifest.size(ImageSize(96, 96), "OUT/pipeline.json")
    # the declared tensors describe the default size; another size swaps the latent and image sides
    default, wide = manifest.size_list[0], manifest.size_list[1]
    unet, decoder = manifest.component("unet"), manifest.component("decoder")
    assert [t.shape for t in tensors_at(unet.inputs, default, wide)] == [(2, 4, 8, 12), (2,), (2, 768, 1, 77)]
    assert [t.shape for t in tensors_at(decoder.outputs, default, wide)] == [(1, 3, 64, 96)]
    one = PipelineManifest.from_dict(_case("v3_sizes_null"))
    assert one.sizes is None and [(s.function, s.latent) for s in one.size_list] == [("main", (8, 8))]
    absent = _case("v3_sizes_null")
    del absent["sizes"]
    assert PipelineManifest.from_dict(absent) == one
    assert PipelineManifest.from_dict(_case("v2_ddim")).size_list == one.size_list  # format 2 still reads


@pytest.mark.parametrize("name, message", [
    ("v3_sizes_empty", "expected sizes as a non-empty list (or null for one size), got a list"),
    ("v3_sizes_first_not_the_default", "expected sizes[0] as the top-level image 64x64 and latent 8x8, got image 96x64"),
    ("v3_sizes_repeated", "expected sizes with distinct images, got image_64x96 more than once"),
    ("v3_sizes_function_misnamed", "expected sizes[1].function as image_64x96, got a string 'image_96x64'"),
    ("v3_sizes_image_not_8x_latent", "expected sizes[2].image as 8 x its latent (88x64), got 96x64"),
    ("v3_sizes_latent_zero", "expected sizes[1].latent.width as an integer >= 1, got a number 0"),
    ("v3_sizes_without_function", "expected key sizes[1].function, got none"),
])
def test_bad_size_lists_give_one_line(name, message):
    with pytest.raises(UserError) as info:
        PipelineManifest.from_dict(_case(name), "OUT/pipeline.json")
    assert str(info.value).startswith(message) and str(info.value).endswith(" (in OUT/pipeline.json)"), str(info.value)
