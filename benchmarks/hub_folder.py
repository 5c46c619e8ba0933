"""A full-size SD-1.5 folder laid out the way Hub checkpoints are, for the conversion benchmarks.

Written by diffusers' and transformers' own save_pretrained (random weights, seed 0), in the
layout of runwayml/stable-diffusion-v1-5 and its copies: model_index.json naming
StableDiffusionPipeline, unet/ and vae/ with `diffusion_pytorch_model.safetensors` and the
`diffusion_pytorch_model.fp16.safetensors` variant, text_encoder/ with `model.safetensors` and
`model.fp16.safetensors`, tokenizer/, scheduler/ (PNDM, the Hub's SD-1.5 scheduler). The fp16
variants are the fp32 weights cast with `.half()`, as diffusers' `variant="fp16"` uploads are.
The version stamps in the configs read as the versions most Hub folders were saved with
(diffusers 0.30, transformers 4.x: `torch_dtype`, not transformers 5's `dtype`).

    python benchmarks/hub_folder.py WORK     # builds WORK/sd-v1.5-hub once
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "sd-v1.5-hub"
DIFFUSERS_VERSION, TRANSFORMERS_VERSION = "0.30.0", "4.44.2"
UNET = dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8)  # diffusers' defaults give the rest
VAE = dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
           up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=2, sample_size=512)
TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
            max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                 steps_offset=1, set_alpha_to_one=False)
MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline", "_diffusers_version": DIFFUSERS_VERSION,
    "feature_extractor": ["transformers", "CLIPImageProcessor"], "requires_safety_checker": True,
    "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"], "scheduler": ["diffusers", "PNDMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
}


def build_hub_folder(work: Path) -> Path:
    """WORK/sd-v1.5-hub, built in a separate process (its memory is not the caller's) unless there."""
    folder = Path(work) / NAME
    if not (folder / "model_index.json").is_file():
        subprocess.run([sys.executable, str(Path(__file__).resolve()), str(work)], check=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return folder


def _save(module, directory: Path, **kwargs) -> None:
    """fp32 weights, then the `.half()` copy as the fp16 variant."""
    module.save_pretrained(directory, **kwargs)
    module.half().save_pretrained(directory, variant="fp16", **kwargs)
    module.float()


def _stamp(config: Path, version_key: str, version: str) -> None:
    data = json.loads(config.read_text())
    data[version_key] = version
    if "dtype" in data:  # transformers 5's name; 4.x wrote torch_dtype
        data["torch_dtype"] = data.pop("dtype")
    config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def main(work: Path) -> None:
    import shutil

    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from snapfusion_coreml.assets import tokenizer_dir

    folder = work / NAME
    building = work / f".{NAME}.building"
    shutil.rmtree(building, ignore_errors=True)
    torch.manual_seed(0)
    for name, build in (("unet", lambda: UNet2DConditionModel(**UNET)), ("vae", lambda: AutoencoderKL(**VAE))):
        module = build().eval()
        _save(module, building / name, safe_serialization=True)
        _stamp(building / name / "config.json", "_diffusers_version", DIFFUSERS_VERSION)
        del module
    text = CLIPTextModel(CLIPTextConfig(**TEXT)).eval()
    _save(text, building / "text_encoder")
    _stamp(building / "text_encoder" / "config.json", "transformers_version", TRANSFORMERS_VERSION)
    shutil.copytree(tokenizer_dir(), building / "tokenizer")
    PNDMScheduler(**SCHEDULER).save_config(building / "scheduler")
    _stamp(building / "scheduler" / "scheduler_config.json", "_diffusers_version", DIFFUSERS_VERSION)
    (building / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2) + "\n")
    building.rename(folder)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
