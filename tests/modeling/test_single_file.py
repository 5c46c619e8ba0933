"""Single-file checkpoints in the original LDM/CompVis layout (`convert FILE --base ...`)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from cli_runner import run_cli
from snapfusion_coreml.assets import tokenizer_dir
from snapfusion_coreml.config import resolve_layout
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.modeling.diffusers_config import layout_from_diffusers_config
from snapfusion_coreml.modeling.loading import load_pipeline
from snapfusion_coreml.modeling.single_file import BASES, BASES_DIR
from snapfusion_coreml.tokenizer import load_tokenizer, pad_token

from .ldm_layout import clip_to_ldm, open_clip_to_ldm, unet_prefix_table, unet_to_ldm, vae_to_ldm
from .sd_files import VAE_CONFIG, bare_text_state, tiny_models, unet_config
from .test_checkpoint_formats import assert_matches_references, convert_and_verify

pytestmark = [pytest.mark.xdist_group("test_single_file")]  # its module fixtures are built once, on one worker

SD2_TEXT = dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=77, hidden_act="gelu", projection_dim=32, bos_token_id=0, eos_token_id=2, pad_token_id=1)


def write_base(root, unet, text, sd2: bool = False):
    """A --base folder: diffusers config files only, as the shipped bases are laid out."""
    for name, data in (("unet/config.json", {"_class_name": "UNet2DConditionModel", **unet.config}),
                       ("vae/config.json", {"_class_name": "AutoencoderKL", **VAE_CONFIG}),
                       ("text_encoder/config.json", {k: v for k, v in text.config.to_dict().items() if not k.startswith("_")}),
                       ("scheduler/scheduler_config.json", {"_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear",
                                                            "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1,
                                                            "prediction_type": "v_prediction" if sd2 else "epsilon"})):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps(data, default=list))
    if sd2:
        (root / "tokenizer").mkdir()
        (root / "tokenizer" / "special_tokens_map.json").write_text(json.dumps({"pad_token": "!"}))
    return root


def ldm_checkpoint(unet, vae, text, sd2: bool = False) -> dict[str, torch.Tensor]:
    """The whole pipeline in one state dict, plus the EMA copies and DDPM buffers real files carry."""
    bare = bare_text_state(text)
    if sd2:
        extra = {k[len("encoder.layers.0."):]: torch.randn_like(v) for k, v in bare.items() if k.startswith("encoder.layers.0.")}
        state = open_clip_to_ldm(bare, text.config.num_hidden_layers, extra)
    else:
        state = clip_to_ldm(bare, text.config.max_position_embeddings)
    state.update(unet_to_ldm(unet))
    state.update(vae_to_ldm(vae))
    state["model_ema.decay"] = torch.tensor(0.9999)
    state["model_ema.num_updates"] = torch.tensor(1000, dtype=torch.int32)
    for key, value in list(state.items())[:5]:
        state["model_ema." + key.replace(".", "")] = value.clone()
    state["betas"] = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    state["alphas_cumprod"] = torch.cumprod(1 - state["betas"], 0)
    return {k: v.contiguous() for k, v in state.items()}


@pytest.fixture(scope="module")
def sd1(tmp_path_factory):
    root = tmp_path_factory.mktemp("ldm1")
    unet, vae, text = tiny_models(seed=5)
    write_base(root / "base", unet, text)
    save_file(ldm_checkpoint(unet, vae, text), str(root / "model.safetensors"))
    return root, unet, vae, text


@pytest.mark.slow
def test_sd1_safetensors_matches_the_diffusers_modules_and_verifies(sd1, tmp_path):
    root, unet, vae, text = sd1
    pipe = load_pipeline(root / "model.safetensors", base=str(root / "base"))
    assert pipe.tokenizer.pad_token_id == 49407 and pipe.scheduler.prediction_type == "epsilon"
    assert_matches_references(pipe, text, unet, vae)
    manifest = convert_and_verify(root / "model.safetensors", tmp_path / "out", base=str(root / "base"), unet_batch=1)
    assert manifest["source"]["base"] == str((root / "base").resolve())


def test_ckpt_needs_allow_pickle(sd1, tmp_path):
    root, unet, vae, text = sd1
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": ldm_checkpoint(unet, vae, text), "global_step": 470000}, ckpt)
    with pytest.raises(UserError, match="--allow-pickle"):
        load_pipeline(ckpt, base=str(root / "base"))
    pipe = load_pipeline(ckpt, base=str(root / "base"), allow_pickle=True)
    assert_matches_references(pipe, text, unet, vae)


@pytest.mark.slow
def test_sd2_open_clip_single_file(tmp_path):
    cfg = unet_config(sd2=True)
    unet, vae, text = tiny_models(seed=6, unet_cfg=cfg, text_cfg=SD2_TEXT)
    write_base(tmp_path / "base", unet, text, sd2=True)
    save_file(ldm_checkpoint(unet, vae, text, sd2=True), str(tmp_path / "sd2.safetensors"))
    pipe = load_pipeline(tmp_path / "sd2.safetensors", base=str(tmp_path / "base"))
    assert pipe.tokenizer.pad_token_id == 0 and pipe.scheduler.prediction_type == "v_prediction"
    assert pipe.unet.layout.use_linear_projection and pipe.unet.layout.upcast_attention
    assert_matches_references(pipe, text, unet, vae)
    # the OpenCLIP tower converts; the UNet's LDM keys convert as in the SD-1 test above
    manifest = convert_and_verify(tmp_path / "sd2.safetensors", tmp_path / "out", ("text_encoder",), base=str(tmp_path / "base"))
    assert manifest["tokenizer"]["pad_token_id"] == 0 and manifest["prediction_type"] == "v_prediction"


def test_unknown_or_missing_tensors_are_named(sd1, tmp_path):
    root, unet, vae, text = sd1
    state = ldm_checkpoint(unet, vae, text)
    state["model.diffusion_model.input_blocks.1.7.weight"] = torch.zeros(1)
    save_file(state, str(tmp_path / "extra.safetensors"))
    with pytest.raises(UserError, match=r"input_blocks\.1\.7\.weight\) \(in .*extra\.safetensors\)"):
        load_pipeline(tmp_path / "extra.safetensors", base=str(root / "base"))
    del state["model.diffusion_model.input_blocks.1.7.weight"]
    del state["model.diffusion_model.middle_block.1.proj_in.weight"]
    save_file(state, str(tmp_path / "missing.safetensors"))
    with pytest.raises(UserError, match=r"missing keys \[mid_block\.attentions\.0\.proj_in\.weight\]"):
        load_pipeline(tmp_path / "missing.safetensors", base=str(root / "base"))


@pytest.mark.slow
def test_cli_needs_a_matching_base(sd1, tmp_path, capsys):
    root, *_ = sd1
    model = str(root / "model.safetensors")
    code, _, err = run_cli(["convert", model, "-o", str(tmp_path / "a")], capsys)
    assert code == 2 and "expected --base sd-v1 | sd-v2 | sd-v2-base | FOLDER" in err and "look like sd-v1" in err
    code, _, err = run_cli(["convert", model, "--base", "sd-v2", "-o", str(tmp_path / "b")], capsys)
    assert code == 2 and "expected a sd-v2 checkpoint" in err
    code, _, err = run_cli(["convert", str(root / "base"), "--base", "sd-v1", "-o", str(tmp_path / "d")], capsys)
    assert code == 2 and "expected a single-file checkpoint with --base sd-v1" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "d").exists()
    code, _, err = run_cli(["convert", model, "--base", str(root / "base"), "--components", "text_encoder",
                            "-o", str(tmp_path / "c")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "c" / "pipeline.json").read_text())["source"]["model"] == model


# --- the shipped original configs --------------------------------------------------------------------------
def test_shipped_bases_describe_the_original_models():
    layouts = {name: layout_from_diffusers_config(json.loads((BASES_DIR / name / "unet" / "config.json").read_text()))
               for name in BASES}
    sd15 = resolve_layout("sd-v1.5")
    assert (layouts["sd-v1"].down, layouts["sd-v1"].mid, layouts["sd-v1"].up) == (sd15.down, sd15.mid, sd15.up)
    assert layouts["sd-v1"].cross_attention_dim == 768 and layouts["sd-v2"].cross_attention_dim == 1024
    assert [s.heads for s in layouts["sd-v2"].down] == [5, 10, 20, 20] and layouts["sd-v2"].use_linear_projection
    assert layouts["sd-v2"].sample_size == 96 and layouts["sd-v2-base"].sample_size == 64
    for name, pad in (("sd-v1", 49407), ("sd-v2", 0), ("sd-v2-base", 0)):
        assert load_tokenizer(tokenizer_dir(), pad=pad_token(BASES_DIR / name / "tokenizer")).pad_token_id == pad
    schedulers = {n: json.loads((BASES_DIR / n / "scheduler" / "scheduler_config.json").read_text())["prediction_type"] for n in BASES}
    assert schedulers == {"sd-v1": "epsilon", "sd-v2": "v_prediction", "sd-v2-base": "epsilon"}


@pytest.mark.parametrize("name", BASES)
def test_full_size_key_sets_convert(name):
    """Every tensor of a full-size LDM UNet (names and shapes, built on the meta device) converts
    to exactly the tensors our UNet of the shipped config holds."""
    from diffusers import UNet2DConditionModel

    from snapfusion_coreml.modeling.ldm_keys import ldm_unet_to_diffusers
    from snapfusion_coreml.modeling.unet import SnapFusionUNet

    cfg = json.loads((BASES_DIR / name / "unet" / "config.json").read_text())
    with torch.device("meta"):
        reference = UNet2DConditionModel(**{k: v for k, v in cfg.items() if not k.startswith("_")})
        ours = SnapFusionUNet(layout_from_diffusers_config(cfg))
    ldm = {k[len("model.diffusion_model."):]: v for k, v in unet_to_ldm(reference).items()}
    assert len(unet_prefix_table(reference)) > 100
    converted = ldm_unet_to_diffusers(ldm, cfg, name)
    own = ours.state_dict()
    assert set(converted) == set(own)
    assert all(converted[k].numel() == own[k].numel() for k in own)
