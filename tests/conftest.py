"""Shared fixtures: tiny seeded pipelines built in the test session (nothing is downloaded)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def tiny_pipeline():
    from snapfusion_coreml.modeling.factory import build_tiny_pipeline

    return build_tiny_pipeline(prediction_type="v_prediction")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_pipeline):
    """The tiny pipeline saved in this project's folder format."""
    from snapfusion_coreml.modeling.loading import save_pipeline

    out = tmp_path_factory.mktemp("models") / "tiny"
    save_pipeline(tiny_pipeline, out)
    return out


@pytest.fixture(scope="module")
def one_thread():
    """Tiny Core ML programs run fastest on one thread (and do not fight other jobs for cores)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_converted_dir(tmp_path_factory, tiny_model_dir):
    """The tiny pipeline converted by `convert` (fp16, UNet batch 2), shared by the session."""
    from snapfusion_coreml.convert import ConvertOptions, convert_pipeline

    out = tmp_path_factory.mktemp("converted") / "out"
    convert_pipeline(str(tiny_model_dir), ConvertOptions(out=out))
    return out


@pytest.fixture(scope="session")
def diffusers_folder(tmp_path_factory):
    """A tiny SD-format folder written by diffusers/transformers themselves:
    (root, unet, vae, text encoder) with seeded weights N(0, 0.05)."""
    import json
    import shutil

    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from snapfusion_coreml.assets import tokenizer_dir
    from snapfusion_coreml.modeling.factory import TINY_TEXT

    root = tmp_path_factory.mktemp("sd") / "tiny-sd"
    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=2, norm_num_groups=8, sample_size=8, layers_per_block=1)
    vae = AutoencoderKL(block_out_channels=(8, 16, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8, layers_per_block=1)
    text = CLIPTextModel(CLIPTextConfig(**TINY_TEXT))
    for module in (unet, vae, text):
        for p in module.parameters():
            p.data.normal_(0, 0.05)
    unet.save_pretrained(root / "unet")
    vae.save_pretrained(root / "vae")
    text.save_pretrained(root / "text_encoder")
    shutil.copytree(tokenizer_dir(), root / "tokenizer")
    DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1).save_config(root / "scheduler")
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return root, unet.eval(), vae.eval(), text.eval()


@pytest.fixture(scope="session")
def lcm_unet_folder(tmp_path_factory, diffusers_folder):
    """The tiny SD folder with a full LCM UNet (time_cond_proj_dim) saved by diffusers."""
    import json
    import shutil

    import torch
    from diffusers import LCMScheduler, UNet2DConditionModel

    root, _, vae, text = diffusers_folder
    torch.manual_seed(3)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                attention_head_dim=2, norm_num_groups=8, sample_size=8, layers_per_block=1,
                                time_cond_proj_dim=16)
    for p in unet.parameters():
        p.data.normal_(0, 0.05)
    out = tmp_path_factory.mktemp("lcm") / "tiny-lcm"
    out.mkdir()
    for name in ("vae", "text_encoder", "tokenizer"):
        shutil.copytree(root / name, out / name)
    unet.save_pretrained(out / "unet")
    LCMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, set_alpha_to_one=True).save_config(out / "scheduler")
    (out / "model_index.json").write_text(json.dumps({"_class_name": "LatentConsistencyModelPipeline"}))
    return out, unet.eval(), vae, text
