"""Checkpoint folders as other tools and versions wrote them: each loads, matches a reference loaded
independently by diffusers / transformers from the same files, converts, and `verify` passes."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open

from snapfusion_coreml.assets import tokenizer_dir
from snapfusion_coreml.convert import ConvertOptions, convert_pipeline
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.metrics import PARITY_PSNR_DB, psnr
from snapfusion_coreml.modeling.loading import load_pipeline
from snapfusion_coreml.tokenizer import load_tokenizer, tokenize
from snapfusion_coreml.verify.check import verify_folder

from .sd_files import tiny_models, unet_config, write_sd_folder

pytestmark = [pytest.mark.xdist_group("test_checkpoint_formats")]  # its module fixtures are built once, on one worker

PROMPT = "a photo of an astronaut riding a horse!"


@pytest.fixture(scope="module")
def models():
    return tiny_models(seed=0)


def reference_text_encoder(folder, variant=None):
    from transformers import CLIPTextModel

    return CLIPTextModel.from_pretrained(folder / "text_encoder", variant=variant, torch_dtype=torch.float32).eval()


def reference_unet_vae(folder, variant=None, safetensors=True):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    kw = dict(variant=variant, use_safetensors=safetensors, torch_dtype=torch.float32)
    return (UNet2DConditionModel.from_pretrained(folder / "unet", **kw).eval(),
            AutoencoderKL.from_pretrained(folder / "vae", **kw).eval())


def assert_matches_references(pipe, text_ref, unet_ref=None, vae_ref=None, tokenizer_ref=None):
    """Our loaded pipeline against independently loaded diffusers/transformers modules."""
    ids = tokenize(pipe.tokenizer, [PROMPT])
    if tokenizer_ref is not None:
        theirs = tokenizer_ref([PROMPT], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        assert ids.tolist() == theirs.tolist()
    with torch.no_grad():
        assert psnr(text_ref(input_ids=ids).last_hidden_state.numpy(), pipe.text_encoder(input_ids=ids).last_hidden_state.numpy()) >= PARITY_PSNR_DB
        g = torch.Generator().manual_seed(0)
        side = pipe.unet.layout.sample_size
        x, t = torch.randn(1, 4, side, side, generator=g), torch.tensor([321.0])
        c = torch.randn(1, 77, pipe.unet.layout.cross_attention_dim, generator=g)
        if unet_ref is not None:
            assert psnr(unet_ref(x, t, c).sample.numpy(), pipe.unet(x, t, c.transpose(1, 2).unsqueeze(2)).numpy()) >= PARITY_PSNR_DB
        if vae_ref is not None:
            z = torch.randn(1, 4, 8, 8, generator=g)
            assert psnr(vae_ref.decode(z).sample.numpy(), pipe.decoder(z).numpy()) >= PARITY_PSNR_DB


def convert_and_verify(model, out, components=("text_encoder", "unet", "decoder"), **options) -> dict:
    """Convert MODEL (fp16, no palettization) and run `verify` in its fp16 mode (the device's
    precision, the stricter of the two); returns pipeline.json."""
    convert_pipeline(str(model), ConvertOptions(out=out, components=tuple(components), **options))
    report = verify_folder(out, modes=("fp16",), allow_pickle=options.get("allow_pickle", False))
    assert report.ok, report.failure_message()
    assert {c.component for c in report.checks} == set(components)
    return json.loads((out / "pipeline.json").read_text())


# --- text encoder key conventions and file names ----------------------------------------------------
TEXT_FORMATS = {
    "transformers4_prefix_position_ids": dict(te_prefix=True, te_position_ids=True),
    "prefix_without_position_ids": dict(te_prefix=True, te_position_ids=False),
    "bare_keys_with_position_ids": dict(te_prefix=False, te_position_ids=True),
    "bare_keys": dict(te_prefix=False, te_position_ids=False),
}


@pytest.mark.parametrize("name", sorted(TEXT_FORMATS))
def test_text_encoder_key_conventions(models, tmp_path, name):
    unet, vae, text = models
    folder = write_sd_folder(tmp_path / "sd", unet, vae, text, **TEXT_FORMATS[name])
    pipe = load_pipeline(folder)
    ref = reference_text_encoder(folder) if TEXT_FORMATS[name]["te_prefix"] else text
    assert_matches_references(pipe, ref)


@pytest.mark.slow
def test_hub_folder_converts_and_verifies(models, tmp_path):
    """The reported failure: transformers 4.x text encoder keys (text_model.*, position_ids)."""
    unet, vae, text = models
    folder = write_sd_folder(tmp_path / "sd", unet, vae, text)
    pipe = load_pipeline(folder)
    assert_matches_references(pipe, reference_text_encoder(folder), *reference_unet_vae(folder))
    # the UNet's diffusers keys convert as in tests/convert; the text encoder was what failed
    convert_and_verify(folder, tmp_path / "out", ("text_encoder", "decoder"))


@pytest.mark.slow
def test_fp16_variant_files_only(models, tmp_path):
    unet, vae, text = models
    fp16 = dict(te_file="model.fp16.safetensors", unet_file="diffusion_pytorch_model.fp16.safetensors",
                vae_file="diffusion_pytorch_model.fp16.safetensors")
    folder = write_sd_folder(tmp_path / "sd", unet, vae, text, **fp16)
    pipe = load_pipeline(folder)
    assert pipe.text_encoder.dtype == torch.float32 and next(pipe.unet.parameters()).dtype == torch.float32
    assert_matches_references(pipe, reference_text_encoder(folder, "fp16"), *reference_unet_vae(folder, "fp16"))
    convert_and_verify(folder, tmp_path / "out", ("text_encoder", "decoder"))


@pytest.mark.slow
def test_pickle_files_need_allow_pickle(models, tmp_path):
    unet, vae, text = models
    pickle = dict(te_file="pytorch_model.bin", unet_file="diffusion_pytorch_model.bin", vae_file="diffusion_pytorch_model.bin")
    folder = write_sd_folder(tmp_path / "sd", unet, vae, text, **pickle)
    with pytest.raises(UserError, match="--allow-pickle"):
        load_pipeline(folder)
    pipe = load_pipeline(folder, allow_pickle=True)
    assert_matches_references(pipe, reference_text_encoder(folder), *reference_unet_vae(folder, safetensors=False))
    convert_and_verify(folder, tmp_path / "out", ("text_encoder",), allow_pickle=True)


@pytest.mark.slow
def test_deprecated_vae_attention_names(models, tmp_path):
    unet, vae, text = models
    folder = write_sd_folder(tmp_path / "sd", unet, vae, text, legacy_vae_attention=True)
    with safe_open(str(folder / "vae" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "decoder.mid_block.attentions.0.query.weight" in keys and "decoder.mid_block.attentions.0.to_q.weight" not in keys
    pipe = load_pipeline(folder)
    assert_matches_references(pipe, text, vae_ref=reference_unet_vae(folder)[1])
    convert_and_verify(folder, tmp_path / "out", ("decoder",))


@pytest.mark.parametrize("with_folders", [True, False])
def test_safety_checker_and_image_encoder_are_never_loaded(models, tmp_path, with_folders):
    unet, vae, text = models
    extra = {"safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
             "feature_extractor": ["transformers", "CLIPImageProcessor"],
             "image_encoder": ["transformers", "CLIPVisionModelWithProjection"]}
    folder = write_sd_folder(tmp_path / "sd", unet, vae, text, extra_index=extra)
    if with_folders:  # present but unusable: loading any of them would fail loudly
        for name in ("safety_checker", "image_encoder"):
            (folder / name).mkdir()
            (folder / name / "config.json").write_text("{not json")
            (folder / name / "model.safetensors").write_bytes(b"\x00" * 16)
        (folder / "feature_extractor").mkdir()
        (folder / "feature_extractor" / "preprocessor_config.json").write_text("{not json")
    pipe = load_pipeline(folder)
    assert_matches_references(pipe, reference_text_encoder(folder))


# --- SD-2.x ---------------------------------------------------------------------------------------------
PAD_FORMS = {
    "tokenizer_config_string": {"tokenizer_config.json": {"pad_token": "!", "model_max_length": 77,
                                                          "tokenizer_class": "CLIPTokenizer"}},
    "special_tokens_map_added_token": {
        "special_tokens_map.json": {"bos_token": {"content": "<|startoftext|>", "lstrip": False, "normalized": True,
                                                  "rstrip": False, "single_word": False},
                                    "pad_token": {"content": "!", "lstrip": False, "normalized": False,
                                                  "rstrip": False, "single_word": False}},
        "tokenizer_config.json": {"model_max_length": 77, "tokenizer_class": "CLIPTokenizer"}},
}


@pytest.mark.parametrize("form", sorted(PAD_FORMS))
def test_sd2_pad_token_matches_transformers(tmp_path, form):
    from transformers import CLIPTokenizer

    folder = tmp_path / "tokenizer"
    shutil.copytree(tokenizer_dir(), folder)
    for name, data in PAD_FORMS[form].items():
        (folder / name).write_text(json.dumps(data))
    ours = load_tokenizer(folder)
    theirs = CLIPTokenizer.from_pretrained(folder)
    assert ours.pad_token_id == theirs.pad_token_id == 0
    prompts = ["", PROMPT, "wow!! so! many!!! bangs"]
    got = tokenize(ours, prompts)
    assert got.tolist() == theirs(prompts, padding="max_length", max_length=77, truncation=True).input_ids
    assert got[0, 2:].eq(0).all() and got[0, :2].tolist() == [49406, 49407]


@pytest.mark.slow
def test_sd2_v_prediction_768_linear_projection_upcast(tmp_path):
    """SD-2.x: v-prediction scheduler, 768 px (96 latent), linear projections, upcast attention,
    per-block head counts and the tokenizer's own pad token ("!", id 0)."""
    from transformers import CLIPTokenizer

    cfg = {**unet_config(sd2=True, sample_size=96), "layers_per_block": 1}
    unet, vae, text = tiny_models(seed=1, unet_cfg=cfg)
    sched = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1,
             "num_train_timesteps": 1000, "prediction_type": "v_prediction", "clip_sample": False, "set_alpha_to_one": False}
    folder = write_sd_folder(tmp_path / "sd2", unet, vae, text, unet_cfg=cfg, scheduler=sched,
                             tokenizer_settings=PAD_FORMS["special_tokens_map_added_token"])
    pipe = load_pipeline(folder)
    layout = pipe.unet.layout
    assert layout.use_linear_projection and layout.upcast_attention and [s.heads for s in layout.down] == [2, 4]
    assert pipe.scheduler.prediction_type == "v_prediction" and pipe.defaults.image_size == 768
    assert_matches_references(pipe, reference_text_encoder(folder), *reference_unet_vae(folder),
                              tokenizer_ref=CLIPTokenizer.from_pretrained(folder / "tokenizer"))
    manifest = convert_and_verify(folder, tmp_path / "out", ("text_encoder",))
    assert manifest["tokenizer"]["pad_token_id"] == 0 and manifest["prediction_type"] == "v_prediction"
    assert manifest["image"] == {"height": 768, "width": 768} and manifest["latent"]["height"] == 96
    # the UNet (linear projections, upcast attention) converts and verifies; at 64 px to stay fast
    manifest = convert_and_verify(folder, tmp_path / "unet", ("unet",), image_size=64, unet_batch=1)
    assert manifest["components"]["unet"]["inputs"][0]["shape"] == [1, 4, 8, 8]


def test_own_folder_keeps_the_pad_token(tmp_path):
    from snapfusion_coreml.modeling.loading import save_pipeline

    unet, vae, text = tiny_models(seed=2)
    folder = write_sd_folder(tmp_path / "sd2", unet, vae, text, tokenizer_settings=PAD_FORMS["tokenizer_config_string"])
    save_pipeline(load_pipeline(folder), tmp_path / "own")
    again = load_pipeline(tmp_path / "own")
    assert again.tokenizer.pad_token == "!" and again.tokenizer.pad_token_id == 0


# --- BK-SDM-style pruned UNets ---------------------------------------------------------------------------
@pytest.mark.slow
def test_bk_sdm_unet_without_mid_block(tmp_path):
    cfg = unet_config(pruned=True)
    unet, vae, text = tiny_models(seed=3, unet_cfg=cfg)
    assert unet.mid_block is None
    folder = write_sd_folder(tmp_path / "bk", unet, vae, text, unet_cfg=cfg)
    pipe = load_pipeline(folder)
    assert pipe.unet.layout.mid.blocks == () and [len(s.blocks) for s in pipe.unet.layout.down] == [2, 1]
    unet_ref, _ = reference_unet_vae(folder)
    assert_matches_references(pipe, reference_text_encoder(folder), unet_ref)
    convert_and_verify(folder, tmp_path / "out", ("unet",), unet_batch=1)


# --- float32 token ids (Apple's convention) -------------------------------------------------------------
@pytest.mark.slow
def test_input_ids_are_float32_and_exact(models, tmp_path):
    """Every CLIP id survives the float32 input: the program casts input_ids straight to int32."""
    from snapfusion_coreml.interpreter.program import load_program

    unet, vae, text = models
    folder = write_sd_folder(tmp_path / "sd", unet, vae, text)
    manifest = convert_and_verify(folder, tmp_path / "out", ("text_encoder",))
    assert manifest["components"]["text_encoder"]["inputs"] == [{"name": "input_ids", "shape": [1, 77], "dtype": "float32"}]
    program = load_program(tmp_path / "out" / "TextEncoder.mlpackage")
    assert program.input_dtypes == {"input_ids": "fp32"}
    users = [s for s in program.steps if any(isinstance(a, tuple) and a[2] == "input_ids" for a in s.args)]
    assert [(s.op_type, s.out_dtypes) for s in users] == [("cast", ("int32",))]
