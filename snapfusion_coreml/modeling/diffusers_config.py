"""Translate a diffusers UNet2DConditionModel config.json into a `UNetLayout`.

SD-1.x configs use `attention_head_dim` in its legacy meaning, the number of heads
(diffusers: "num_attention_heads = num_attention_heads or attention_head_dim"); SD-2.x's
[5, 10, 20, 20] is heads per block likewise (head dim 64). Only the SD family's block types are
supported; any other feature is refused by name instead of being silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import RESNET, TRANSFORMER, PipelineDefaults, SchedulerConfig, StageLayout, UNetLayout, load_layout, resolve_layout
from ..errors import UserError
from ..image_size import VAE_FACTOR, latent_size, vae_factor
from ..json_fields import read_json

# Keys that must hold their default (SD-family) value.
_DEFAULTS: dict[str, Any] = {
    "act_fn": "silu", "center_input_sample": False, "class_embed_type": None, "addition_embed_type": None,
    "encoder_hid_dim": None, "dual_cross_attention": False, "only_cross_attention": False,
    "num_class_embeds": None, "resnet_time_scale_shift": "default", "time_embedding_type": "positional",
    "conv_in_kernel": 3, "conv_out_kernel": 3, "downsample_padding": 1,
    "attention_type": "default", "timestep_post_act": None, "resnet_skip_time_act": False,
    "resnet_out_scale_factor": 1.0, "cross_attention_norm": None, "class_embeddings_concat": False,
    "mid_block_only_cross_attention": None, "time_embedding_dim": None, "time_embedding_act_fn": None,
    "projection_class_embeddings_input_dim": None, "addition_time_embed_dim": None,
    "reverse_transformer_layers_per_block": None,
}


def _per_block(value: Any, n: int, key: str, source: str) -> list[int]:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise UserError(f"expected {n} values for {key}, got {len(value)} (in {source})")
        return [int(v) for v in value]
    return [int(value)] * n


def layout_from_diffusers_config(cfg: dict[str, Any], source: str = "unet/config.json", name: str = "") -> UNetLayout:
    """The layout that reproduces diffusers' UNet2DConditionModel built from `cfg`."""
    for key, default in _DEFAULTS.items():
        value = cfg.get(key, default)
        if value != default and (value or default):  # None and False both mean "off"
            raise UserError(f"unsupported UNet config: {key}={cfg.get(key)!r} (expected {default!r}) (in {source})")
    if cfg.get("_class_name", "UNet2DConditionModel") != "UNet2DConditionModel":
        raise UserError(f"expected a UNet2DConditionModel config, got {cfg.get('_class_name')!r} (in {source})")
    down_types = list(cfg.get("down_block_types", ()))
    up_types = list(cfg.get("up_block_types", ()))
    n = len(down_types)
    widths = [int(c) for c in cfg.get("block_out_channels", ())]
    if not n or len(widths) != n or len(up_types) != n:
        raise UserError(f"expected matching down_block_types, up_block_types and block_out_channels (in {source})")
    cross = cfg.get("cross_attention_dim", 1280)
    if isinstance(cross, (list, tuple)):
        if len(set(cross)) != 1:
            raise UserError(f"unsupported UNet config: per-block cross_attention_dim {cross} (in {source})")
        cross = cross[0]
    heads = _per_block(cfg.get("num_attention_heads") or cfg.get("attention_head_dim", 8), n, "attention_head_dim", source)
    layers = _per_block(cfg.get("layers_per_block", 2), n, "layers_per_block", source)
    depth = _per_block(cfg.get("transformer_layers_per_block", 1), n, "transformer_layers_per_block", source)

    def blocks(kind: str, count: int) -> tuple[str, ...]:
        if kind.startswith("CrossAttn"):
            return tuple(b for _ in range(count) for b in (RESNET, TRANSFORMER))
        if kind in ("DownBlock2D", "UpBlock2D"):
            return (RESNET,) * count
        raise UserError(f"unsupported UNet block type {kind!r} (in {source})")

    down = tuple(StageLayout(widths[i], blocks(down_types[i], layers[i]), heads[i], depth[i]) for i in range(n))
    rev = list(reversed(range(n)))
    up = tuple(StageLayout(widths[j], blocks(up_types[i], layers[j] + 1), heads[j], depth[j]) for i, j in enumerate(rev))
    mid_type = cfg.get("mid_block_type", "UNetMidBlock2DCrossAttn")
    if mid_type == "UNetMidBlock2DCrossAttn":
        mid_blocks = (RESNET,) + (TRANSFORMER, RESNET)
    elif mid_type is None:
        mid_blocks = ()
    else:
        raise UserError(f"unsupported mid_block_type {mid_type!r} (in {source})")
    mid = StageLayout(widths[-1], mid_blocks, heads[-1], depth[-1])
    layout = UNetLayout(
        name=name or "diffusers", down=down, mid=mid, up=up,
        in_channels=int(cfg.get("in_channels", 4)), out_channels=int(cfg.get("out_channels", 4)),
        cross_attention_dim=int(cross), sample_size=int(cfg.get("sample_size") or 64),
        norm_num_groups=int(cfg.get("norm_num_groups", 32)), norm_eps=float(cfg.get("norm_eps", 1e-5)),
        flip_sin_to_cos=bool(cfg.get("flip_sin_to_cos", True)), freq_shift=int(cfg.get("freq_shift", 0)),
        use_linear_projection=bool(cfg.get("use_linear_projection", False)),
        upcast_attention=bool(cfg.get("upcast_attention", False)),
        mid_scale_factor=float(cfg.get("mid_block_scale_factor", 1.0)),
        time_cond_proj_dim=None if cfg.get("time_cond_proj_dim") is None else int(cfg["time_cond_proj_dim"]),
        description=f"from diffusers config {source}",
    )
    layout.validate(source)
    return layout


def scheduler_from_diffusers(cfg: dict, source: str) -> SchedulerConfig:
    spacing = cfg.get("timestep_spacing") or "leading"  # diffusers' default when the key is absent
    return SchedulerConfig.from_dict({**cfg, "timestep_spacing": spacing, "steps_offset": cfg.get("steps_offset", 0)}, source)


def diffusers_defaults(vae_config: dict, layout: UNetLayout, pipeline_class: str | None = None,
                       scheduler_config: dict | None = None) -> PipelineDefaults:
    """Sampling defaults of a diffusers pipeline folder: StableDiffusionPipeline's 50 steps and
    w = 7.5; LatentConsistencyModelPipeline's 4 steps and w = 8.5 (a UNet with a guidance
    embedding); 4 steps without guidance for a plain UNet whose scheduler is LCMScheduler or
    TCDScheduler (LCM-LoRA, Hyper-SD and TCD LoRAs fused into SD: their authors sample 2-8 steps
    at w 1-2, where 50 steps at 7.5 overexposes)."""
    blocks = vae_config.get("block_out_channels")
    factor = vae_factor(blocks) if blocks else VAE_FACTOR  # SD's VAE when the config does not say
    steps, guidance = 50, 7.5
    if pipeline_class == "LatentConsistencyModelPipeline" or layout.time_cond_proj_dim is not None:
        steps, guidance = 4, 8.5
    elif (scheduler_config or {}).get("_class_name") in ("LCMScheduler", "TCDScheduler"):
        steps, guidance = 4, 1.0
    return PipelineDefaults(steps=steps, guidance_scale=guidance,
                            latent_scale_factor=float(vae_config.get("scaling_factor", 0.18215)),
                            image_size=layout.sample_size * factor)


def unet_folder_layout(directory: Path) -> UNetLayout:
    """The layout of a UNet folder (ours: layout.json, diffusers: config.json), from its config
    alone: no weights are read and torch is not imported."""
    if (directory / "layout.json").is_file():
        return load_layout(directory / "layout.json")
    return layout_from_diffusers_config(read_json(directory / "config.json", "the UNet config"), str(directory / "config.json"))


def check_image_size_fits(image_size, model: Path | None, layout: str | None = None) -> None:
    """Refuse an --image-size the UNet cannot take, from config files alone (no weights, no torch):
    the UNet of `layout` (a preset or JSON the model is mapped onto) or of the local model folder.
    Single-file checkpoints are checked once opened (their configs come from --base)."""
    if image_size is None:
        return
    if layout is not None:
        unet = resolve_layout(layout)
    elif model is not None and (Path(model) / "unet").is_dir():
        unet = unet_folder_layout(Path(model) / "unet")
    else:
        return
    latent_size(image_size, unet.latent_divisor, unet.num_levels)
