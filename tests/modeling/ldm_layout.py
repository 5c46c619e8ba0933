"""Write diffusers/transformers modules as an original LDM/CompVis single-file checkpoint.

The inverse of what snapfusion_coreml.modeling.ldm_keys reads, written independently: it walks the
diffusers module tree (block by block, as ldm/modules/diffusionmodules/openaimodel.py numbers
them) and builds a table of module prefixes, instead of renaming keys with patterns.
"""

from __future__ import annotations

import torch

RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "norm2": "out_layers.0",
          "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
VAE_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2", "conv_shortcut": "nin_shortcut"}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _resnet_rows(table: dict, diffusers: str, ldm: str, names: dict) -> None:
    for new, old in names.items():
        table[f"{diffusers}.{new}"] = f"{ldm}.{old}"


def unet_prefix_table(unet) -> dict[str, str]:
    """diffusers module prefix -> LDM module prefix for a UNet2DConditionModel."""
    table = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
             "time_embedding.linear_2": "time_embed.2", "conv_norm_out": "out.0", "conv_out": "out.2"}
    entry = 1
    for level, block in enumerate(unet.down_blocks):
        attentions = getattr(block, "attentions", None) or []
        for j in range(len(block.resnets)):
            _resnet_rows(table, f"down_blocks.{level}.resnets.{j}", f"input_blocks.{entry}.0", RESNET)
            if attentions:
                table[f"down_blocks.{level}.attentions.{j}"] = f"input_blocks.{entry}.1"
            entry += 1
        if block.downsamplers is not None:
            table[f"down_blocks.{level}.downsamplers.0.conv"] = f"input_blocks.{entry}.0.op"
            entry += 1
    if unet.mid_block is not None:
        _resnet_rows(table, "mid_block.resnets.0", "middle_block.0", RESNET)
        table["mid_block.attentions.0"] = "middle_block.1"
        _resnet_rows(table, "mid_block.resnets.1", "middle_block.2", RESNET)
    entry = 0
    for level, block in enumerate(unet.up_blocks):
        attentions = getattr(block, "attentions", None) or []
        for j in range(len(block.resnets)):
            _resnet_rows(table, f"up_blocks.{level}.resnets.{j}", f"output_blocks.{entry}.0", RESNET)
            if attentions:
                table[f"up_blocks.{level}.attentions.{j}"] = f"output_blocks.{entry}.1"
            entry += 1
        if block.upsamplers is not None:
            table[f"up_blocks.{level}.upsamplers.0.conv"] = f"output_blocks.{entry - 1}.{2 if attentions else 1}.conv"
    return table


def vae_prefix_table(vae) -> dict[str, str]:
    """diffusers prefix -> LDM prefix for an AutoencoderKL's decoder and post_quant_conv."""
    table = {"post_quant_conv": "post_quant_conv", "decoder.conv_in": "decoder.conv_in",
             "decoder.conv_out": "decoder.conv_out", "decoder.conv_norm_out": "decoder.norm_out"}
    for i in range(2):
        _resnet_rows(table, f"decoder.mid_block.resnets.{i}", f"decoder.mid.block_{i + 1}", VAE_RESNET)
    for new, old in VAE_ATTENTION.items():
        table[f"decoder.mid_block.attentions.0.{new}"] = f"decoder.mid.attn_1.{old}"
    n = len(vae.decoder.up_blocks)
    for level, block in enumerate(vae.decoder.up_blocks):
        for j in range(len(block.resnets)):
            _resnet_rows(table, f"decoder.up_blocks.{level}.resnets.{j}", f"decoder.up.{n - 1 - level}.block.{j}", VAE_RESNET)
        if block.upsamplers is not None:
            table[f"decoder.up_blocks.{level}.upsamplers.0.conv"] = f"decoder.up.{n - 1 - level}.upsample.conv"
    return table


def renamed(state: dict[str, torch.Tensor], table: dict[str, str], prefix: str) -> dict[str, torch.Tensor]:
    """Every tensor renamed by its longest matching module prefix; one without a row is an error."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            head = ".".join(parts[:cut])
            if head in table:
                out[prefix + table[head] + "." + ".".join(parts[cut:])] = value
                break
        else:
            raise KeyError(f"no LDM name for {key}")
    return out


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    return renamed(dict(unet.state_dict()), unet_prefix_table(unet), "model.diffusion_model.")


def vae_encoder_prefix_table(vae) -> dict[str, str]:
    """diffusers prefix -> LDM prefix for an AutoencoderKL's encoder and quant_conv (LDM numbers
    the down levels from full resolution, as diffusers does)."""
    table = {"quant_conv": "quant_conv", "encoder.conv_in": "encoder.conv_in", "encoder.conv_out": "encoder.conv_out",
             "encoder.conv_norm_out": "encoder.norm_out"}
    for i in range(2):
        _resnet_rows(table, f"encoder.mid_block.resnets.{i}", f"encoder.mid.block_{i + 1}", VAE_RESNET)
    for new, old in VAE_ATTENTION.items():
        table[f"encoder.mid_block.attentions.0.{new}"] = f"encoder.mid.attn_1.{old}"
    for level, block in enumerate(vae.encoder.down_blocks):
        for j in range(len(block.resnets)):
            _resnet_rows(table, f"encoder.down_blocks.{level}.resnets.{j}", f"encoder.down.{level}.block.{j}", VAE_RESNET)
        if block.downsamplers is not None:
            table[f"encoder.down_blocks.{level}.downsamplers.0.conv"] = f"encoder.down.{level}.downsample.conv"
    return table


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    """The whole autoencoder under LDM names (mid attentions as 1x1 convs, as LDM stores them)."""
    table = {**vae_prefix_table(vae), **vae_encoder_prefix_table(vae)}
    out = renamed(dict(vae.state_dict()), table, "first_stage_model.")
    for key in list(out):
        if ".mid.attn_1." in key and key.endswith(".weight") and out[key].dim() == 2:
            out[key] = out[key][:, :, None, None]
    return out


def clip_to_ldm(bare_state: dict[str, torch.Tensor], max_positions: int) -> dict[str, torch.Tensor]:
    """SD-1.x: transformers 4.x CLIPTextModel keys under cond_stage_model.transformer."""
    out = {f"cond_stage_model.transformer.text_model.{k}": v for k, v in bare_state.items()}
    out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(max_positions)[None]
    return out


def open_clip_to_ldm(bare_state: dict[str, torch.Tensor], num_layers: int, extra_layer: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SD-2.x: an OpenCLIP text tower (q, k, v stacked into in_proj) with one more resblock than SD
    uses, plus the contrastive head's text_projection and logit_scale."""
    p = "cond_stage_model.model."
    out = {p + "token_embedding.weight": bare_state["embeddings.token_embedding.weight"],
           p + "positional_embedding": bare_state["embeddings.position_embedding.weight"],
           p + "ln_final.weight": bare_state["final_layer_norm.weight"], p + "ln_final.bias": bare_state["final_layer_norm.bias"]}
    layers = [{k[len(f"encoder.layers.{i}."):]: v for k, v in bare_state.items() if k.startswith(f"encoder.layers.{i}.")}
              for i in range(num_layers)] + [extra_layer]
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj", "mlp.fc1": "mlp.c_fc",
             "mlp.fc2": "mlp.c_proj"}
    for i, layer in enumerate(layers):
        q = f"{p}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[q + f"attn.in_proj_{kind}"] = torch.cat([layer[f"self_attn.{n}_proj.{kind}"] for n in "qkv"], dim=0)
            for new, old in names.items():
                out[q + f"{old}.{kind}"] = layer[f"{new}.{kind}"]
    width = out[p + "ln_final.weight"].shape[0]
    out[p + "text_projection"] = torch.randn(width, width)
    out[p + "logit_scale"] = torch.tensor(4.6)
    return out
