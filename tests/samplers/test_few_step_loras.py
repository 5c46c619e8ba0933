"""Few-step LoRAs on SD-1.5 (LCM-LoRA, TCD and Hyper-SD LoRAs) as their authors publish them,
fused at convert time, then sampled with the scheduler they are made for: the image and every
step's latent equal diffusers' pipeline with the same LoRA loaded and fused by diffusers.

The adapters cover every module LCM-LoRA's training script adapts (attention projections,
feed-forward, proj_in/out, both ResNet convs, the shortcut, time_emb_proj, the down- and
upsampler convs), which is also what the TCD and Hyper-SD SD-1.5 LoRAs adapt.
"""

from __future__ import annotations

import pytest
import torch

from snapfusion_coreml.convert_spec import LoraSpec
from snapfusion_coreml.metrics import psnr
from snapfusion_coreml.modeling.attention import AttentionImpl
from snapfusion_coreml.modeling.loading import load_pipeline
from snapfusion_coreml.modeling.lora import read_lora
from tests.modeling.test_lora import fused_with_diffusers, write_kohya_lora
from tests.samplers.test_generate_vs_diffusers import NEGATIVE, PROMPT, SEED, _assert_same, _diffusers_image, _folder_with_scheduler, _scheduler

LCM_LORA_MODULES = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1", "conv2",
                    "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj")


def lcm_lora_targets(unet) -> list[str]:
    return [name for name, module in unet.named_modules()
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)) and name.endswith(LCM_LORA_MODULES)]


@pytest.mark.slow
def test_lcm_lora_fused_at_convert_draws_diffusers_image(diffusers_folder, tmp_path):
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    root, unet, _, text = diffusers_folder
    targets = lcm_lora_targets(unet)
    assert any("conv_shortcut" in t for t in targets) and any("samplers" in t for t in targets)
    lora = tmp_path / "pytorch_lora_weights.safetensors"
    write_kohya_lora(lora, unet, text, rank=4, alpha=16.0, seed=7, targets={"unet": targets})
    fused = tmp_path / "fused"
    fused_with_diffusers(root, [(lora, 1.0)], fused)

    steps, guidance = 4, 1.0  # LCM-LoRA's usual setting: no CFG
    lcm = {"steps_offset": 1}
    expected = _diffusers_image(StableDiffusionPipeline, fused, UNet2DConditionModel.from_pretrained(fused / "unet"),
                                AutoencoderKL.from_pretrained(fused / "vae"), CLIPTextModel.from_pretrained(fused / "text_encoder"),
                                _scheduler("LCMScheduler", lcm), steps, guidance)
    folder = _folder_with_scheduler(root, tmp_path / "sd-lcm", _scheduler("LCMScheduler", lcm))
    ours = load_pipeline(folder, attention=AttentionImpl.ORIGINAL, loras=(read_lora(LoraSpec(lora, 1.0)),))
    assert (ours.defaults.steps, ours.defaults.guidance_scale) == (4, 1.0)
    latents: list[torch.Tensor] = []
    image = ours.generate(PROMPT, steps, guidance, SEED, negative_prompt=NEGATIVE, on_step=lambda i, t, z: latents.append(z.clone()))
    _assert_same(expected, image, latents)
    plain: list[torch.Tensor] = []
    load_pipeline(folder, attention=AttentionImpl.ORIGINAL).generate(PROMPT, steps, guidance, SEED,
                                                                     on_step=lambda i, t, z: plain.append(z.clone()))
    assert psnr(latents[-1].numpy(), plain[-1].numpy()) < 40  # without the LoRA the comparison above fails
