"""LoRA merging against diffusers' and peft's own fusing.

LoRA files are written the way the trainers write them: kohya's lora_unet_*/lora_te_* keys with
.lora_down/.lora_up/.alpha (fp16, LoCon down projection carrying a 3x3 kernel), built key by key
here; and diffusers/peft files written by peft adapters and diffusers' save_lora_weights (alpha in
the header metadata). The reference is the same tiny diffusers pipeline with the LoRAs loaded and
fused by diffusers (load_lora_weights, set_adapters, fuse_lora), saved by save_pretrained.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from cli_runner import run_cli
from snapfusion_coreml.convert_spec import LoraSpec, parse_lora_option
from snapfusion_coreml.digests import tree_sha256
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.metrics import PARITY_PSNR_DB, psnr
from snapfusion_coreml.modeling.loading import load_pipeline
from snapfusion_coreml.modeling.lora import read_lora
from snapfusion_coreml.tokenizer import tokenize

pytestmark = [pytest.mark.xdist_group("test_lora")]  # its module fixtures are built once, on one worker

ATTN = "down_blocks.0.attentions.0.transformer_blocks.0"
KOHYA_TARGETS = {  # module -> rank (the text encoder's are under lora_te_)
    "unet": [f"{ATTN}.attn1.to_q", f"{ATTN}.attn2.to_k", f"{ATTN}.attn1.to_out.0", f"{ATTN}.ff.net.0.proj",
             "down_blocks.0.attentions.0.proj_in", "down_blocks.0.resnets.0.conv1", "up_blocks.1.resnets.0.time_emb_proj"],
    "text_encoder": ["encoder.layers.0.self_attn.q_proj", "encoder.layers.1.mlp.fc1"],
}


def write_kohya_lora(path, unet, text, rank: int = 2, alpha: float = 1.0, seed: int = 1,
                     targets: dict[str, list[str]] = KOHYA_TARGETS) -> None:
    """A kohya-ss LoRA file: underscored module names, fp16 tensors, an alpha per module."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for component, names in targets.items():
        # kohya names the text encoder's modules as transformers 4 did, under text_model
        model, prefix = (unet, "lora_unet_") if component == "unet" else (text, "lora_te_text_model_")
        for name in names:
            weight = model.get_submodule(name).weight
            out, cin, kernel = weight.shape[0], weight.shape[1], tuple(weight.shape[2:])
            key = prefix + name.replace(".", "_")
            tensors[f"{key}.lora_down.weight"] = (0.2 * torch.randn(rank, cin, *kernel, generator=g)).half()
            tensors[f"{key}.lora_up.weight"] = (0.2 * torch.randn(out, rank, *(1,) * len(kernel), generator=g)).half()
            tensors[f"{key}.alpha"] = torch.tensor(alpha, dtype=torch.float16)
    save_file(tensors, str(path))


def write_peft_lora(path, root) -> None:
    """A diffusers/peft LoRA file: peft adapters on fresh copies, saved by diffusers' save_lora_weights."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextModel

    torch.manual_seed(2)
    unet = UNet2DConditionModel.from_pretrained(root / "unet")
    text = CLIPTextModel.from_pretrained(root / "text_encoder")
    unet_config = LoraConfig(r=2, lora_alpha=3, init_lora_weights=False,
                             target_modules=["to_q", "to_v", "to_out.0", "proj_out", "conv2"])
    text_config = LoraConfig(r=4, lora_alpha=2, init_lora_weights=False, target_modules=["k_proj", "out_proj", "fc2"])
    unet.add_adapter(unet_config)
    inject_adapter_in_model(text_config, text)  # transformers' add_adapter wants a newer peft
    StableDiffusionPipeline.save_lora_weights(
        path.parent, unet_lora_layers=get_peft_model_state_dict(unet), text_encoder_lora_layers=get_peft_model_state_dict(text),
        unet_lora_adapter_metadata=unet_config.to_dict(), text_encoder_lora_adapter_metadata=text_config.to_dict(),
        weight_name=path.name)


def _load_adapter_with_peft(self, adapter_name, adapter_state_dict, peft_config, **_):
    """transformers' PreTrainedModel.load_adapter done by peft's own functions (the installed
    transformers asks for a peft release newer than any published)."""
    from peft import inject_adapter_in_model, set_peft_model_state_dict

    inject_adapter_in_model(peft_config, self, adapter_name=adapter_name)
    set_peft_model_state_dict(self, adapter_state_dict, adapter_name=adapter_name)


def fused_with_diffusers(root, loras: list[tuple], out) -> None:
    """The diffusers pipeline of `root` with `loras` [(path, scale)] fused by diffusers, saved to `out`."""
    from transformers import CLIPTextModel

    original, CLIPTextModel.load_adapter = CLIPTextModel.load_adapter, _load_adapter_with_peft
    try:
        _fuse_and_save(root, loras, out)
    finally:
        CLIPTextModel.load_adapter = original


def _fuse_and_save(root, loras: list[tuple], out) -> None:
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL.from_pretrained(root / "vae"), text_encoder=CLIPTextModel.from_pretrained(root / "text_encoder"),
        tokenizer=CLIPTokenizer.from_pretrained(root / "tokenizer"), unet=UNet2DConditionModel.from_pretrained(root / "unet"),
        scheduler=DDIMScheduler.from_pretrained(root / "scheduler"), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    names = [f"lora{i}" for i in range(len(loras))]
    for name, (path, _) in zip(names, loras):
        pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
    pipe.set_adapters(names, adapter_weights=[scale for _, scale in loras])
    pipe.fuse_lora(components=["unet", "text_encoder"], lora_scale=1.0, adapter_names=names)
    pipe.unload_lora_weights()
    pipe.save_pretrained(out)


@pytest.fixture(scope="module")
def lora_files(diffusers_folder, tmp_path_factory):
    root, unet, _, text = diffusers_folder
    folder = tmp_path_factory.mktemp("loras")
    write_kohya_lora(folder / "style_kohya.safetensors", unet, text, rank=2, alpha=1.0)
    write_peft_lora(folder / "subject_peft.safetensors", root)
    return folder / "style_kohya.safetensors", folder / "subject_peft.safetensors"


@pytest.fixture(scope="module")
def fused_folder(diffusers_folder, lora_files, tmp_path_factory):
    root = diffusers_folder[0]
    out = tmp_path_factory.mktemp("fused") / "fused"
    fused_with_diffusers(root, [(lora_files[0], 0.7), (lora_files[1], 1.0)], out)
    return out


def _outputs(pipeline):
    ids = tokenize(pipeline.tokenizer, ["a photo of an astronaut"])
    g = torch.Generator().manual_seed(0)
    x, t, c = torch.randn(1, 4, 8, 8, generator=g), torch.tensor([321.0]), torch.randn(1, 32, 1, 77, generator=g)
    with torch.no_grad():
        return pipeline.text_encoder(input_ids=ids).last_hidden_state.numpy(), pipeline.unet(x, t, c).numpy()


@pytest.mark.slow
def test_merged_loras_match_diffusers_fusing(diffusers_folder, lora_files, fused_folder):
    root = diffusers_folder[0]
    kohya, peft = lora_files
    assert read_lora(LoraSpec(kohya)).kohya and not read_lora(LoraSpec(peft)).kohya
    header = json.loads(json.loads(peft.read_bytes()[8:8 + int.from_bytes(peft.read_bytes()[:8], "little")])
                        ["__metadata__"]["lora_adapter_metadata"])
    assert header["unet.lora_alpha"] == 3 and header["text_encoder.r"] == 4  # alpha / r != 1 for both
    merged = load_pipeline(root, loras=(read_lora(LoraSpec(kohya, 0.7)), read_lora(LoraSpec(peft, 1.0))))
    reference = load_pipeline(fused_folder)
    plain = load_pipeline(root)
    for ours, ref, base in zip(_outputs(merged), _outputs(reference), _outputs(plain)):
        assert psnr(ref, ours) >= PARITY_PSNR_DB
        assert psnr(ref, base) < 40  # the LoRAs change the outputs well beyond the tolerance
    # every adapted weight of the reference equals ours (diffusers layout: Linear (out, in))
    ours_state = merged.unet.state_dict()
    for name, tensor in reference.unet.state_dict().items():
        assert torch.allclose(ours_state[name].reshape(tensor.shape), tensor, atol=1e-5), name


@pytest.mark.slow
def test_one_lora_at_a_scale(diffusers_folder, lora_files, tmp_path):
    root = diffusers_folder[0]
    fused_with_diffusers(root, [(lora_files[0], 0.5)], tmp_path / "fused")
    ours = _outputs(load_pipeline(root, loras=(read_lora(LoraSpec(lora_files[0], 0.5)),)))
    for a, b in zip(ours, _outputs(load_pipeline(tmp_path / "fused"))):
        assert psnr(b, a) >= PARITY_PSNR_DB


@pytest.mark.parametrize("text, path, scale", [
    ("style.safetensors", "style.safetensors", 1.0),
    ("style.safetensors:0.8", "style.safetensors", 0.8),
    ("dir/style.safetensors:-1", "dir/style.safetensors", -1.0),
])
def test_lora_option(text, path, scale):
    spec = parse_lora_option(text)
    assert str(spec.path) == path and spec.scale == scale


@pytest.mark.parametrize("text, message", [
    ("style.safetensors:strong", "SCALE a number, got 'strong'"),
    ("style.safetensors:nan", "finite SCALE"),
])
def test_bad_lora_scales(text, message):
    with pytest.raises(UserError, match=message):
        parse_lora_option(text)


def _tensors(**kwargs):
    return {k.replace("__", "."): v for k, v in kwargs.items()}


@pytest.mark.parametrize("tensors, message", [
    ({"lora_unet_down_blocks_7_attentions_0_proj_in.lora_down.weight": torch.zeros(2, 32, 1, 1),
      "lora_unet_down_blocks_7_attentions_0_proj_in.lora_up.weight": torch.zeros(32, 2, 1, 1)},
     "1 of 1 that match nothing \\(first: 'lora_unet_down_blocks_7"),
    ({"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": torch.zeros(2, 32, 1, 1),
      "unet.down_blocks.0.attentions.0.proj_in.lora_B.weight": torch.zeros(48, 2, 1, 1)},
     "to update a weight of shape \\(32, 32, 1, 1\\), got up \\(48, 2, 1, 1\\)"),
    ({"model.diffusion_model.input_blocks.1.lora_A.weight": torch.zeros(2, 4)}, "expected LoRA keys unet"),
    ({"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": torch.zeros(2, 32, 1, 1)}, "expected a up tensor beside"),
    ({"lora_unet_conv_in.lora_down.weight": torch.zeros(2, 4, 3, 3), "lora_unet_conv_in.dora_scale": torch.zeros(1)},
     "no DoRA"),
])
def test_bad_lora_files_get_one_line(diffusers_folder, tmp_path, tensors, message):
    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path))
    with pytest.raises(UserError, match=message) as info:
        load_pipeline(diffusers_folder[0], loras=(read_lora(LoraSpec(path)),))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_lora_files_that_cannot_be_read(tmp_path):
    with pytest.raises(UserError, match="LoRA file not found"):
        read_lora(LoraSpec(tmp_path / "missing.safetensors"))
    (tmp_path / "torn.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(UserError, match="corrupt or truncated"):
        read_lora(LoraSpec(tmp_path / "torn.safetensors"))
    (tmp_path / "w.ckpt").write_bytes(b"x")
    with pytest.raises(UserError, match="expected a .safetensors LoRA file"):
        read_lora(LoraSpec(tmp_path / "w.ckpt"))


@pytest.mark.slow
def test_convert_with_loras_then_verify(diffusers_folder, lora_files, fused_folder, tmp_path, capsys):
    """convert --lora FILE:SCALE --lora FILE (palettized), verify against diffusers' fused pipeline
    and against the source model with the recorded LoRAs."""
    root = diffusers_folder[0]
    kohya, peft = lora_files
    out = tmp_path / "out"
    code, _, err = run_cli(["convert", str(root), "-o", str(out), "--lora", f"{kohya}:0.7", "--lora", str(peft),
                            "--palettize", "text_encoder=8,unet=8"], capsys)
    assert code == 0, err
    manifest = json.loads((out / "pipeline.json").read_text())
    assert manifest["source"]["loras"] == [
        {"file": kohya.name, "sha256": tree_sha256(kohya), "scale": 0.7, "path": str(kohya)},
        {"file": peft.name, "sha256": tree_sha256(peft), "scale": 1.0, "path": str(peft)},
    ]
    for reference in (["--reference", str(fused_folder)], []):
        code, stdout, err = run_cli(["verify", str(out), "--modes", "fp32", "--json", *reference], capsys)
        assert code == 0, stdout + err
        checks = json.loads(stdout)["checks"]
        assert {c["component"] for c in checks} == {"text_encoder", "unet", "decoder", "encoder"}  # the diffusers VAE has an encoder
    # the plain model is not what was converted
    code, stdout, _ = run_cli(["verify", str(out), "--modes", "fp32", "--reference", str(root)], capsys)
    assert code == 1


@pytest.mark.slow
def test_convert_refuses_bad_loras_before_writing(diffusers_folder, tmp_path, capsys):
    root = diffusers_folder[0]
    path = tmp_path / "other.safetensors"
    save_file({"lora_unet_down_blocks_5_resnets_0_conv1.lora_down.weight": torch.zeros(2, 4, 3, 3),
               "lora_unet_down_blocks_5_resnets_0_conv1.lora_up.weight": torch.zeros(4, 2, 1, 1)}, str(path))
    for lora, message in ((f"{path}:much", "SCALE a number"), (str(path), "match nothing")):
        code, _, err = run_cli(["convert", str(root), "-o", str(tmp_path / "o"), "--lora", lora], capsys)
        assert code == 2 and message in err and "Traceback" not in err, err
        assert not (tmp_path / "o").exists()
