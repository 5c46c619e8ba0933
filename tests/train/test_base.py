"""train autoencoder -> train latents -> train base on tiny seeded models (a few steps: it runs, not quality)."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from snapfusion_coreml.eval.shapes import scene
from snapfusion_coreml.modeling.factory import TINY_TEXT, tiny_layout
from snapfusion_coreml.modeling.loading import load_pipeline
from snapfusion_coreml.train.autoencoder import AutoencoderConfig, EncodeConfig, encode_latents, train_autoencoder
from snapfusion_coreml.train.base import BaseConfig, train_base

pytestmark = [pytest.mark.xdist_group("test_base")]  # its module fixtures are built once, on one worker

IMAGE = 32  # 4x4 latents with a 4-block autoencoder


def tiny_vae_config(data, training):
    return AutoencoderConfig(data, training, IMAGE, block_out_channels=(8, 8, 8, 8), norm_num_groups=4)


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    """A diffusers AutoencoderKL folder as other tools write it (save_pretrained of a seeded model)."""
    from snapfusion_coreml.train.loop import TrainingConfig

    out = tmp_path_factory.mktemp("vae") / "vae"
    model = tiny_vae_config("shapes", TrainingConfig(out)).build(seed=0)
    model.register_to_config(scaling_factor=0.5)
    model.save_pretrained(str(out), safe_serialization=True)
    return out


@pytest.fixture()
def layout_file(tmp_path):
    path = tmp_path / "tiny.layout.json"
    tiny_layout(TINY_TEXT["hidden_size"]).save(path)
    return path


def base_config(data, vae, layout_file, training, **kw):
    return BaseConfig(data, vae, training, str(layout_file), text_width=TINY_TEXT["hidden_size"], text_layers=1,
                      text_heads=2, image_size=IMAGE, **kw)


def test_autoencoder_trains_and_sets_scaling(tmp_path, training):
    model, result = train_autoencoder(tiny_vae_config("shapes:3", training(tmp_path / "vae", max_steps=3)))
    config = json.loads((tmp_path / "vae" / "config.json").read_text())
    assert config["_class_name"] == "AutoencoderKL" and config["block_out_channels"] == [8, 8, 8, 8]
    assert config["scaling_factor"] == pytest.approx(model.config.scaling_factor) and config["scaling_factor"] > 0
    assert len(result.losses) == 3 and result.losses[-1] < result.losses[0]


@pytest.mark.slow
def test_autoencoder_with_a_frozen_decoder_trains_only_the_encoder(tmp_path, training, tiny_model_dir):
    """--decoder MODEL: the model's decoder and latent scale factor are kept, the encoder learns to invert them."""
    from safetensors.torch import load_file

    from snapfusion_coreml.modeling.loading import ModelFolder

    folder = ModelFolder(tiny_model_dir)
    decoder = {k: v.float() for k, v in folder.load("decoder").state_dict().items()}
    config = AutoencoderConfig("shapes:3", training(tmp_path / "vae", max_steps=3, learning_rate=1e-2), IMAGE,
                               decoder=tiny_model_dir)
    model, result = train_autoencoder(config)
    saved = load_file(str(tmp_path / "vae" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(saved[k].float(), v) for k, v in decoder.items())
    assert model.config.scaling_factor == pytest.approx(folder.defaults.latent_scale_factor)
    seeded = AutoencoderConfig("shapes:3", training(tmp_path / "x"), IMAGE, block_out_channels=model.config.block_out_channels,
                               layers_per_block=model.config.layers_per_block, norm_num_groups=model.config.norm_num_groups,
                               latent_channels=model.config.latent_channels).build(seed=0)
    assert not torch.equal(saved["encoder.conv_in.weight"], seeded.encoder.conv_in.weight)
    assert len(result.losses) == 3 and result.losses[-1] < result.losses[0]
    # --init-encoder: a second run starts from the first one's encoder (at learning rate 0 it keeps it)
    again = dataclasses.replace(config, training=training(tmp_path / "again", max_steps=1, learning_rate=0.0),
                                init_encoder=tmp_path / "vae")
    train_autoencoder(again)
    kept = load_file(str(tmp_path / "again" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(kept[k], v) for k, v in saved.items())


def test_autoencoder_refuses_prompt_lists(tmp_path, training, prompts):
    from snapfusion_coreml.errors import UserError

    with pytest.raises(UserError, match="expected images"):
        train_autoencoder(tiny_vae_config(prompts, training(tmp_path / "vae")))


@pytest.mark.slow
def test_latents_then_base_model_generates(tmp_path, vae_dir, layout_file, training):
    n = encode_latents(EncodeConfig(vae_dir, "shapes:1", tmp_path / "latents", count=5, image_size=IMAGE, batch_size=2))
    files = sorted(p.name for p in (tmp_path / "latents").iterdir())
    assert n == 5 and files[:2] == ["000000.npy", "000000.txt"] and len(files) == 10
    assert (tmp_path / "latents" / "000003.txt").read_text().strip() == scene(1, 3).caption()
    assert np.load(tmp_path / "latents" / "000000.npy").shape == (4, IMAGE // 8, IMAGE // 8)

    config = base_config(tmp_path / "latents", vae_dir, layout_file, training(tmp_path / "base", max_steps=3))
    pipeline, result = train_base(config)
    assert len(result.losses) == 3
    loaded = load_pipeline(tmp_path / "base")
    assert loaded.scheduler.prediction_type == "epsilon" and loaded.scheduler.timestep_spacing == "trailing"
    assert loaded.defaults.latent_scale_factor == pytest.approx(0.5) and loaded.defaults.image_size == IMAGE
    # the text encoder was trained together with the UNet: both differ from a fresh initialisation
    from snapfusion_coreml.train.base import new_pipeline

    fresh = new_pipeline(config)
    for trained, initial in ((loaded.text_encoder, fresh.text_encoder), (loaded.unet, fresh.unet)):
        assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), initial.state_dict().values()))
    image = loaded.generate("a red circle on a blue background", steps=2, seed=1)
    assert image.shape == (IMAGE, IMAGE, 3) and image.dtype == np.uint8
    # the VAE's encoder is kept (vae_encoder/): the saved model does image to image
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(str(vae_dir)).eval()
    pixels = torch.rand(1, 3, IMAGE, IMAGE) * 2 - 1
    assert (tmp_path / "base" / "vae_encoder").is_dir() and loaded.encoder is not None
    torch.testing.assert_close(loaded.encoder(pixels), vae.quant_conv(vae.encoder(pixels)), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_base_from_images_through_the_vae(tmp_path, vae_dir, layout_file, training):
    _, result = train_base(base_config("shapes:2", vae_dir, layout_file, training(tmp_path / "base", max_steps=2)))
    assert len(result.losses) == 2 and all(np.isfinite(result.losses))


def test_base_bad_input(tmp_path, vae_dir, layout_file, training, prompts):
    from snapfusion_coreml.errors import UserError

    with pytest.raises(UserError, match="got a prompt list"):
        train_base(base_config(prompts, vae_dir, layout_file, training(tmp_path / "a")))
    with pytest.raises(UserError, match="cross_attention_dim 64"):
        train_base(dataclass_replace(base_config("shapes", vae_dir, layout_file, training(tmp_path / "b")), text_width=64))
    np.save(tmp_path / "x.npy", np.zeros((4, 8, 8), np.float32))
    (tmp_path / "x.txt").write_text("a red circle on a blue background")
    with pytest.raises(UserError, match=r"expected latents of shape \(4, 4, 4\).*got \(4, 8, 8\)"):
        train_base(base_config(tmp_path, vae_dir, layout_file, training(tmp_path / "c")))


def dataclass_replace(config, **kw):
    import dataclasses

    return dataclasses.replace(config, **kw)


@pytest.mark.parametrize("case", ["prompt list", "missing vae", "bad channels"])
def test_cli_bad_input_one_line_exit_2(case, tmp_path, vae_dir, prompts, monkeypatch, capsys):
    from test_cli_train import run_cli

    args, expected = {
        "prompt list": (["train", "base", "--data", str(prompts), "--vae", str(vae_dir), "-o", str(tmp_path / "o")],
                        "got a prompt list"),
        "missing vae": (["train", "latents", str(tmp_path / "nope"), "--data", "shapes", "-o", str(tmp_path / "o")],
                        "config.json"),
        "bad channels": (["train", "autoencoder", "--data", "shapes", "-o", str(tmp_path / "o"),
                          "--block-out-channels", "8,x"], "comma-separated integers"),
    }[case]
    code, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2, err
    assert expected in err and not (tmp_path / "o").exists()
    if case != "bad channels":  # typer's own usage box for option errors
        assert len(err.splitlines()) == 1 and err.startswith("error:"), err
