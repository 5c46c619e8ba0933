"""VAEDecoder: parity with diffusers' AutoencoderKL decode, weights I/O, and channel pruning."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from snapfusion_coreml.config import DecoderConfig
from snapfusion_coreml.errors import UserError
from snapfusion_coreml.metrics import PARITY_PSNR_DB, psnr
from snapfusion_coreml.modeling.decoder_pruning import prune_decoder
from snapfusion_coreml.modeling.vae_decoder import CONFIG_NAME, WEIGHTS_NAME, VAEDecoder

SD_VAE = {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "norm_num_groups": 32}


def tiny_vae(block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8, seed=0, **extra) -> AutoencoderKL:
    """A diffusers AutoencoderKL whose every parameter (norm affines and biases included) is random."""
    torch.manual_seed(seed)
    n = len(block_out_channels)
    vae = AutoencoderKL(
        block_out_channels=block_out_channels,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        layers_per_block=layers_per_block,
        norm_num_groups=norm_num_groups,
        latent_channels=4,
        **extra,
    )
    randomize_(vae)
    return vae.eval()


def randomize_(model: torch.nn.Module) -> None:
    """Keep the default conv/linear init, make norm weights, norm biases and biases non-trivial."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                base = 1.0 if "norm" in name and name.endswith("weight") else 0.0
                p.copy_(base + 0.2 * torch.randn_like(p))


def tiny_decoder(seed=0, **config) -> VAEDecoder:
    torch.manual_seed(seed)
    decoder = VAEDecoder(DecoderConfig(**{"block_out_channels": (32, 64, 64), "layers_per_block": 1, "norm_num_groups": 8, **config}))
    randomize_(decoder)
    return decoder.eval()


# --- structure and parity ---------------------------------------------------------------------------


def test_state_dict_keys_and_shapes_equal_diffusers():
    vae = tiny_vae(layers_per_block=2)
    reference = {k: tuple(v.shape) for k, v in vae.state_dict().items() if k.startswith(("decoder.", "post_quant_conv."))}
    ours = VAEDecoder(DecoderConfig(block_out_channels=(32, 64), layers_per_block=2, norm_num_groups=8))
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == reference


@pytest.mark.parametrize(
    "block_out_channels, layers_per_block, norm_num_groups",
    [((32, 64), 1, 8), ((32, 64), 2, 16), ((32, 64, 64), 1, 16)],  # the last has SD's identity-shortcut block after an upsampler
)
def test_decode_parity_with_diffusers(block_out_channels, layers_per_block, norm_num_groups):
    vae = tiny_vae(block_out_channels, layers_per_block, norm_num_groups, seed=sum(block_out_channels) + layers_per_block)
    decoder = VAEDecoder.from_diffusers(vae.state_dict(), dict(vae.config), source="vae/diffusion_pytorch_model.safetensors").eval()
    z = torch.randn(2, 4, 8, 6)
    with torch.no_grad():
        reference = vae.decode(z).sample
        image = decoder(z)
    scale = 2 ** (len(block_out_channels) - 1)
    assert image.shape == (2, 3, 8 * scale, 6 * scale)
    assert reference.std() > 0.1  # a meaningful signal, not a near-constant output
    assert psnr(reference.numpy(), image.numpy()) >= PARITY_PSNR_DB


def test_full_size_parameter_counts():
    with torch.device("meta"):
        full = VAEDecoder(DecoderConfig(**SD_VAE))
        slim = VAEDecoder(DecoderConfig(**SD_VAE, width_multiplier=0.5))
        vae = AutoencoderKL(down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, **SD_VAE)
    diffusers_count = sum(p.numel() for k, p in vae.named_parameters() if k.startswith(("decoder.", "post_quant_conv.")))
    assert full.num_parameters() == diffusers_count == 49_490_199  # paper: 50M
    assert slim.num_parameters() == 12_387_479  # paper: 13M


@pytest.mark.slow
def test_attention_converts_to_core_ml_without_sdpa():
    ct = pytest.importorskip("coremltools")
    decoder = tiny_decoder(block_out_channels=(32, 64))
    z = torch.randn(1, 4, 8, 8)
    traced = torch.jit.trace(decoder, z)
    mlmodel = ct.convert(
        traced,
        inputs=[ct.TensorType(name="z", shape=z.shape)],
        outputs=[ct.TensorType(name="image")],
        convert_to="mlprogram",
        compute_precision=ct.precision.FLOAT32,
    )
    ops = {op.op_type for fn in mlmodel._mil_program.functions.values() for op in fn.operations}
    assert {"matmul", "softmax", "upsample_nearest_neighbor"} <= ops
    assert not any("attention" in op for op in ops)


# --- loading diffusers weights ----------------------------------------------------------------------


def test_from_diffusers_accepts_pre_refactor_attention_names():
    vae = tiny_vae()
    renamed = {}
    for key, tensor in vae.state_dict().items():
        for new, old in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"), ("to_out.0", "proj_attn")):
            key = key.replace(f"attentions.0.{new}.", f"attentions.0.{old}.")
        renamed[key] = tensor
    assert "decoder.mid_block.attentions.0.proj_attn.weight" in renamed
    decoder = VAEDecoder.from_diffusers(renamed, dict(vae.config), source="old.bin")
    z = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        assert psnr(vae.decode(z).sample.numpy(), decoder(z).numpy()) >= PARITY_PSNR_DB


@pytest.mark.parametrize(
    "change, message",
    [
        ({"mid_block_add_attention": False}, "mid_block_add_attention"),
        ({"use_post_quant_conv": False}, "use_post_quant_conv"),
        ({"act_fn": "gelu"}, "act_fn"),
        ({"up_block_types": ["UpDecoderBlock2D", "AttnUpDecoderBlock2D"]}, "UpDecoderBlock2D"),
        ({"_class_name": "AutoencoderTiny"}, "AutoencoderKL"),
        ({"norm_num_groups": 24}, "norm_num_groups=24"),
    ],
)
def test_from_diffusers_refuses_unsupported_configs(change, message):
    vae = tiny_vae()
    config = {**dict(vae.config), **change}
    with pytest.raises(UserError, match=message) as info:
        VAEDecoder.from_diffusers(vae.state_dict(), config, source="vae/config.json")
    assert "(in vae/config.json)" in str(info.value)


def test_from_diffusers_ignores_encoder_and_force_upcast_but_reports_key_problems():
    vae = tiny_vae()
    config = {**dict(vae.config), "force_upcast": False, "scaling_factor": 0.13025}
    weights = dict(vae.state_dict())
    assert any(k.startswith("encoder.") for k in weights) and "quant_conv.weight" in weights
    VAEDecoder.from_diffusers(weights, config, source="vae.safetensors")  # encoder keys are ignored

    broken = dict(weights)
    del broken["decoder.conv_out.bias"]
    broken["decoder.extra.weight"] = torch.zeros(1)
    broken["decoder.conv_in.weight"] = torch.zeros(64, 4, 1, 1)
    with pytest.raises(UserError) as info:
        VAEDecoder.from_diffusers(broken, config, source="vae.safetensors")
    text = str(info.value)
    assert "missing keys [decoder.conv_out.bias]" in text
    assert "unexpected keys [decoder.extra.weight]" in text
    assert "decoder.conv_in.weight: expected (64, 4, 3, 3), got (64, 4, 1, 1)" in text
    assert text.endswith("(in vae.safetensors)")


# --- save / load ------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    decoder = tiny_decoder(width_multiplier=0.5)
    decoder.save(tmp_path / "decoder")
    assert sorted(p.name for p in (tmp_path / "decoder").iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME])
    assert json.loads((tmp_path / "decoder" / CONFIG_NAME).read_text()) == decoder.config.to_dict()
    loaded = VAEDecoder.load(tmp_path / "decoder").eval()
    assert loaded.config == decoder.config
    z = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        assert torch.equal(loaded(z), decoder(z))


def test_load_reports_missing_and_corrupt_files(tmp_path):
    with pytest.raises(UserError, match=f"expected {CONFIG_NAME}"):
        VAEDecoder.load(tmp_path)
    decoder = tiny_decoder(block_out_channels=(32, 64))
    decoder.save(tmp_path)

    weights = tmp_path / WEIGHTS_NAME
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt or truncated") as info:
        VAEDecoder.load(tmp_path)
    assert str(weights) in str(info.value)

    weights.write_bytes(data)
    (tmp_path / CONFIG_NAME).write_text('{"block_out_channels": [32, 64')
    with pytest.raises(UserError, match="invalid JSON"):
        VAEDecoder.load(tmp_path)

    other = dataclasses.replace(decoder.config, layers_per_block=2)
    (tmp_path / CONFIG_NAME).write_text(json.dumps(other.to_dict()))
    with pytest.raises(UserError, match="missing keys"):
        VAEDecoder.load(tmp_path)


# --- pruning ----------------------------------------------------------------------------------------


def test_prune_halves_widths_and_quarters_parameters():
    full = tiny_decoder()
    slim, report = prune_decoder(full, 0.5)
    assert slim.config.channels == (16, 32, 32)
    assert report["params_before"] == full.num_parameters()
    assert report["params_after"] == slim.num_parameters()
    assert 0.23 < report["params_after"] / report["params_before"] < 0.27
    z = torch.randn(2, 4, 5, 7)
    with torch.no_grad():
        assert slim(z).shape == full(z).shape == (2, 3, 20, 28)
    spaces = report["spaces"]
    assert spaces["decoder.conv_in"] == {**spaces["decoder.conv_in"], "kind": "residual", "kept": 32, "total": 64}
    assert spaces["decoder.up_blocks.2.resnets.0"]["kept"] == 16  # opened by the conv_shortcut
    assert all(len(s["indices"]) == s["kept"] for s in spaces.values())


def test_prune_with_multiplier_one_is_exact():
    full = tiny_decoder(seed=3)
    same, report = prune_decoder(full, 1.0)
    assert report["params_after"] == report["params_before"]
    z = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        assert torch.equal(same(z), full(z))


def test_pruned_decoder_tracks_full_better_than_random_init():
    def cosine(a, b):
        return F.cosine_similarity(a.flatten(1), b.flatten(1)).mean().item()

    pruned, random = [], []
    for seed in range(3):
        full = tiny_decoder(seed=seed)
        slim, _ = prune_decoder(full, 0.5)
        fresh = tiny_decoder(seed=100 + seed, width_multiplier=0.5)
        z = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            target = full(z)
            pruned.append(cosine(slim(z), target))
            random.append(cosine(fresh(z), target))
    assert sum(pruned) / 3 > sum(random) / 3 + 0.2, (pruned, random)


def _set_filter_norms(conv: torch.nn.Module, norms: torch.Tensor) -> None:
    """Every output filter of `conv` becomes a constant filter with the given L2 norm."""
    with torch.no_grad():
        per_filter = conv.weight[0].numel()
        conv.weight.copy_((norms / math.sqrt(per_filter)).view(-1, *[1] * (conv.weight.ndim - 1)).expand_as(conv.weight))


def test_prune_keeps_top_summed_norm_channels_on_hand_built_weights():
    full = tiny_decoder(block_out_channels=(8, 16), norm_num_groups=4)
    mid, up0 = "decoder.mid_block", "decoder.up_blocks.0"
    modules = dict(full.named_modules())
    # Writers into the 16-channel stream opened by conv_in: all filters norm 1, then extras.
    writers = ["decoder.conv_in", f"{mid}.resnets.0.conv2", f"{mid}.attentions.0.to_out.0", f"{mid}.resnets.1.conv2",
               f"{up0}.resnets.0.conv2", f"{up0}.resnets.1.conv2"]
    extra = {name: torch.ones(16) for name in writers}
    extra["decoder.conv_in"][15] = 10.0  # one writer, sum 15
    extra[f"{mid}.resnets.0.conv2"][:6] = 4.0  # channels 0-5: sum 9
    extra[f"{mid}.attentions.0.to_out.0"][9] = 2.0  # channel 9: two writers at 2, sum 8 ...
    extra[f"{up0}.resnets.1.conv2"][9] = 2.0
    extra[f"{mid}.resnets.1.conv2"][12] = 2.9  # ... beats channel 12's single larger filter, sum 7.9
    for name, norms in extra.items():
        _set_filter_norms(modules[name], norms)
    conv1 = torch.tensor([(7 * c) % 16 for c in range(16)], dtype=torch.float32)  # a permutation of 0..15
    _set_filter_norms(modules[f"{mid}.resnets.0.conv1"], conv1)

    slim, report = prune_decoder(full, 0.5)
    stream = report["spaces"]["decoder.conv_in"]["indices"]
    inner = report["spaces"][f"{mid}.resnets.0.conv1"]["indices"]
    assert stream == [0, 1, 2, 3, 4, 5, 9, 15]
    assert inner == [2, 4, 6, 8, 9, 11, 13, 15]  # where 7c mod 16 >= 8

    # consumers follow their producers: inputs by the stream, outputs and norms by their own space
    f, s = full.state_dict(), slim.state_dict()
    stream_t, inner_t = torch.tensor(stream), torch.tensor(inner)
    key = f"{mid}.resnets.0"
    assert torch.equal(s[f"{key}.conv1.weight"], f[f"{key}.conv1.weight"][inner_t][:, stream_t])
    assert torch.equal(s[f"{key}.norm1.bias"], f[f"{key}.norm1.bias"][stream_t])
    assert torch.equal(s[f"{key}.norm2.weight"], f[f"{key}.norm2.weight"][inner_t])
    assert torch.equal(s[f"{key}.conv2.weight"], f[f"{key}.conv2.weight"][stream_t][:, inner_t])
    assert torch.equal(s["decoder.conv_in.weight"], f["decoder.conv_in.weight"][stream_t])  # latent input kept whole
    assert torch.equal(s["post_quant_conv.weight"], f["post_quant_conv.weight"])
    assert s["decoder.conv_out.weight"].shape[0] == 3
    attn = f"{mid}.attentions.0"
    qk = torch.tensor(report["spaces"][f"{attn}.qk"]["indices"])
    assert torch.allclose(s[f"{attn}.to_q.weight"], f[f"{attn}.to_q.weight"][qk][:, stream_t] * math.sqrt(0.5))
    assert torch.equal(s[f"{attn}.to_k.weight"], f[f"{attn}.to_k.weight"][qk][:, stream_t])


def test_prune_refuses_bad_multiplier():
    full = tiny_decoder(block_out_channels=(32, 64))
    for bad in (0.0, 1.5):
        with pytest.raises(UserError, match="width_multiplier"):
            prune_decoder(full, bad)
    with pytest.raises(UserError, match="multiples of norm_num_groups"):
        prune_decoder(full, 0.3)
