"""Frozen configuration objects. Presets are data (models/layouts/*.json), loaded here.

The UNet's architecture is a `UNetLayout`: per stage, an ordered list of ResNet and transformer
blocks. SD-v1.5, SnapFusion's Table 3 efficient UNet, BK-SDM-like variants and whatever
`evolve` produces are all just layouts. `plan_blocks` is the one place that turns a layout into
concrete blocks (channels, skip connections, resolution); the model, the weight mapper, the
latency cost model and `export-blocks` all read it.

Skip connections, for any layout (SD-v1.5 is the special case where counts match):
  - level L is the resolution sample_size / 2**L; conv_in's output is pushed on level 0;
  - in down stage L a skip is pushed after every block that ends the stage or is followed by a
    ResNet block (so [R, T, R, T] pushes after each R+T pair); the downsampler's output is pushed
    on level L+1;
  - every ResNet block of the up stage at level L pops the newest skip of level L, if any is
    left, and concatenates it to its input; skips that no block pops are unused.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .assets import layouts_dir
from .errors import UserError, expected
from .image_size import vae_factor
from .json_fields import JsonFields, read_json, typed_fields

RESNET = "resnet"
TRANSFORMER = "transformer"
BLOCK_KINDS = (RESNET, TRANSFORMER)
LAYOUT_FORMAT = "snapfusion-unet-layout"


def block_name(stage: str, kind: str, index: int) -> str:
    """A block's module name, identical to diffusers' ("up_blocks.1.attentions.2"): ResNet blocks
    live in the stage's `resnets` list, transformer blocks in its `attentions` list."""
    return f"{stage}.{'resnets' if kind == RESNET else 'attentions'}.{index}"


@dataclass(frozen=True)
class StageLayout:
    width: int  # channels of every block in the stage
    blocks: tuple[str, ...]  # ordered "resnet" / "transformer" blocks
    heads: int = 8  # attention heads of the stage's transformer blocks (head dim = width // heads)
    transformer_depth: int = 1  # BasicTransformerBlocks inside one transformer block

    @property
    def num_resnets(self) -> int:
        return sum(kind == RESNET for kind in self.blocks)

    @property
    def num_transformers(self) -> int:
        return sum(kind == TRANSFORMER for kind in self.blocks)


@dataclass(frozen=True)
class UNetLayout:
    name: str
    down: tuple[StageLayout, ...]  # high resolution first; all but the last downsample at the end
    mid: StageLayout  # at the lowest resolution, no skip connections
    up: tuple[StageLayout, ...]  # low resolution first; all but the last upsample at the end
    in_channels: int = 4
    out_channels: int = 4
    cross_attention_dim: int = 768
    sample_size: int = 64  # latent side the model was trained at (512 px / 8)
    norm_num_groups: int = 32
    norm_eps: float = 1e-5
    flip_sin_to_cos: bool = True
    freq_shift: int = 0
    use_linear_projection: bool = False  # SD-2.x: Linear proj_in/proj_out; SD-1.x: 1x1 conv
    upcast_attention: bool = False
    mid_scale_factor: float = 1.0  # output_scale_factor of the mid block's ResNets
    time_cond_proj_dim: int | None = None  # guidance embedding input (`timestep_cond`) of full LCM UNets
    description: str = ""

    # --- derived -----------------------------------------------------------------------------
    @property
    def time_embed_dim(self) -> int:
        return self.down[0].width * 4

    @property
    def num_levels(self) -> int:
        return len(self.down)

    @property
    def latent_divisor(self) -> int:
        """The latent side must be a multiple of this (one halving per downsampler)."""
        return 2 ** (self.num_levels - 1)

    def stages(self) -> list[tuple[str, StageLayout, int]]:
        """(diffusers stage name, stage, level) in execution order."""
        n = self.num_levels
        named = [(f"down_blocks.{i}", s, i) for i, s in enumerate(self.down)]
        named.append(("mid_block", self.mid, n - 1))
        named += [(f"up_blocks.{i}", s, n - 1 - i) for i, s in enumerate(self.up)]
        return named

    def stage(self, name: str) -> StageLayout:
        for stage_name, stage, _ in self.stages():
            if stage_name == name:
                return stage
        raise UserError(f"unknown stage {name!r}; expected one of {[n for n, _, _ in self.stages()]}")

    def replace_stage(self, name: str, stage: StageLayout) -> "UNetLayout":
        """A copy with one stage replaced (used by architecture evolution)."""
        if name == "mid_block":
            return dataclasses.replace(self, mid=stage)
        group, index = name.split(".")  # "down_blocks.2" -> field "down", index 2
        attr = group.removesuffix("_blocks")
        stages = list(getattr(self, attr))
        stages[int(index)] = stage
        return dataclasses.replace(self, **{attr: tuple(stages)})

    def block_counts(self) -> dict[str, int]:
        blocks = [kind for _, stage, _ in self.stages() for kind in stage.blocks]
        return {RESNET: blocks.count(RESNET), TRANSFORMER: blocks.count(TRANSFORMER)}

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["down"] = [_stage_to_dict(s) for s in self.down]
        data["mid"] = _stage_to_dict(self.mid)
        data["up"] = [_stage_to_dict(s) for s in self.up]
        if data["time_cond_proj_dim"] is None:  # layouts without a guidance embedding read as before
            del data["time_cond_proj_dim"]
        return {"format": LAYOUT_FORMAT, "version": 1, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "layout") -> "UNetLayout":
        fields = JsonFields(data, "", source)
        if fields.raw("format", None) != LAYOUT_FORMAT:
            raise expected(f"a UNet layout with \"format\": \"{LAYOUT_FORMAT}\"", repr(data.get("format")), source)
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)} - {"format", "version"}
        if unknown:
            raise expected("known layout keys", f"unknown layout keys {sorted(unknown)}", source)
        stages = lambda f, key, _: tuple(_stage(s) for s in f.objects(key))  # noqa: E731
        layout = cls(**typed_fields(cls, fields, down=stages, up=stages, mid=lambda f, key, _: _stage(f.object(key))))
        layout.validate(source)
        return layout

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    # --- validation ----------------------------------------------------------------------------
    def validate(self, source: str = "layout") -> None:
        """Raise UserError if the layout cannot be built."""
        where = f" (in {source})"
        if not self.down:
            raise UserError(f"a layout needs at least one down stage{where}")
        if len(self.up) != len(self.down):
            raise UserError(f"expected as many up stages as down stages ({len(self.down)}), got {len(self.up)}{where}")
        for name, stage, _ in self.stages():
            bad = [k for k in stage.blocks if k not in BLOCK_KINDS]
            if bad:
                raise UserError(f"stage {name}: unknown block kind {bad[0]!r}, expected one of {BLOCK_KINDS}{where}")
            if stage.width <= 0 or stage.width % self.norm_num_groups:
                raise UserError(f"stage {name}: width {stage.width} must be a positive multiple of norm_num_groups={self.norm_num_groups}{where}")
            if stage.num_transformers and (stage.heads <= 0 or stage.width % stage.heads):
                raise UserError(f"stage {name}: {stage.heads} heads do not divide width {stage.width}{where}")
        if self.mid.width != self.down[-1].width:
            raise UserError(f"mid_block width {self.mid.width} must equal the last down stage's width {self.down[-1].width}{where}")
        plan_blocks(self, source)  # raises on impossible channel changes


def _stage_to_dict(stage: StageLayout) -> dict[str, Any]:
    data = dataclasses.asdict(stage)
    data["blocks"] = list(stage.blocks)
    return data


def _stage(fields: JsonFields) -> StageLayout:
    return StageLayout(**typed_fields(StageLayout, fields))


@dataclass(frozen=True)
class BlockSpec:
    """One concrete block of a layout, in execution order."""

    stage: str  # diffusers stage name, e.g. "up_blocks.1"
    kind: str  # "resnet" | "transformer"
    index: int  # index among the stage's blocks of this kind (diffusers' resnets.{i} / attentions.{i})
    position: int  # index in the stage's ordered block list
    level: int  # resolution level: side = sample_side / 2**level
    in_channels: int  # channels entering the block, skip connection included
    out_channels: int
    skip_channels: int = 0  # channels concatenated from a skip connection (up-stage ResNets)
    heads: int = 0
    depth: int = 0
    push_skip: bool = False  # the block's output is pushed as a skip connection (down stages)

    @property
    def skippable(self) -> bool:
        """Whether the block can be replaced by identity (robust training): channels unchanged."""
        return self.in_channels - self.skip_channels == self.out_channels

    @property
    def name(self) -> str:
        """The block's module name, identical to diffusers' (e.g. "up_blocks.1.attentions.2")."""
        return block_name(self.stage, self.kind, self.index)


def plan_blocks(layout: UNetLayout, source: str = "layout") -> list[BlockSpec]:
    """Concrete blocks of `layout` in execution order; the one implementation of the skip rules."""
    specs: list[BlockSpec] = []
    skips: dict[int, list[int]] = {level: [] for level in range(layout.num_levels)}
    channels = layout.down[0].width  # conv_in output
    skips[0].append(channels)
    for name, stage, level in layout.stages():
        counters = {RESNET: 0, TRANSFORMER: 0}
        for position, kind in enumerate(stage.blocks):
            skip = 0
            if kind == RESNET and name.startswith("up_blocks") and skips[level]:
                skip = skips[level].pop()
            elif kind == TRANSFORMER and channels != stage.width:
                raise UserError(
                    f"stage {name}: a transformer block at position {position} would see {channels} channels "
                    f"but the stage is {stage.width} wide; start the stage with a resnet block (in {source})"
                )
            out = stage.width
            following = stage.blocks[position + 1] if position + 1 < len(stage.blocks) else None
            push = name.startswith("down_blocks") and following in (None, RESNET)
            specs.append(BlockSpec(name, kind, counters[kind], position, level, channels + skip, out, skip,
                                   stage.heads if kind == TRANSFORMER else 0,
                                   stage.transformer_depth if kind == TRANSFORMER else 0, push))
            counters[kind] += 1
            channels = out
            if push:
                skips[level].append(channels)
        if channels != stage.width:
            raise UserError(f"stage {name} has no resnet block to change channels from {channels} to {stage.width} (in {source})")
        if name.startswith("down_blocks") and level < layout.num_levels - 1:
            skips[level + 1].append(channels)  # downsampler output
    return specs


def resolve_layout(spec: str | Path) -> UNetLayout:
    """A preset name from models/layouts (e.g. "snapfusion") or a path to a layout JSON file."""
    path = Path(spec)
    if not path.is_file() and path.suffix != ".json" and "/" not in str(spec):
        path = layouts_dir() / f"{spec}.json"
        if not path.exists():
            presets = sorted(p.stem for p in layouts_dir().glob("*.json"))
            raise UserError(f"unknown layout preset {spec!r}; expected one of {presets} or a path to a layout JSON file")
    return load_layout(path)


def load_layout(path: Path) -> UNetLayout:
    return UNetLayout.from_dict(read_json(Path(path), "a UNet layout JSON file"), str(path))


@dataclass(frozen=True)
class DecoderConfig:
    """SD's VAE decoder (post_quant_conv + Decoder) with a channel width multiplier.

    width_multiplier 0.5 is SnapFusion's slim decoder: every channel count halved (~13M params at
    full size, 50M for SD's).
    """

    latent_channels: int = 4
    out_channels: int = 3
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)  # of the full-width decoder
    layers_per_block: int = 2
    norm_num_groups: int = 32
    width_multiplier: float = 1.0

    @property
    def latent_factor(self) -> int:
        """Pixels per latent cell along each side (8 for SD's four blocks)."""
        return vae_factor(self.block_out_channels)

    @property
    def channels(self) -> tuple[int, ...]:
        """Actual channel counts after the width multiplier."""
        return tuple(int(round(c * self.width_multiplier)) for c in self.block_out_channels)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["block_out_channels"] = list(self.block_out_channels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "decoder config") -> "DecoderConfig":
        config = cls(**typed_fields(cls, JsonFields(data, "", source)))
        for c in config.channels:
            if c <= 0 or c % config.norm_num_groups:
                raise UserError(f"decoder channels {config.channels} must be multiples of norm_num_groups={config.norm_num_groups} (in {source})")
        return config


@dataclass(frozen=True)
class EncoderConfig:
    """SD's VAE encoder (diffusers' vae.Encoder with double_z, then quant_conv): image -> the
    posterior moments (mean and log-variance, latent_channels each)."""

    in_channels: int = 3
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    norm_num_groups: int = 32
    use_quant_conv: bool = True

    @property
    def latent_factor(self) -> int:
        """Pixels per latent cell along each side (8 for SD's four blocks)."""
        return vae_factor(self.block_out_channels)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["block_out_channels"] = list(self.block_out_channels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "encoder config") -> "EncoderConfig":
        config = cls(**typed_fields(cls, JsonFields(data, "", source)))
        if not config.block_out_channels or config.layers_per_block < 1 or config.in_channels < 1 or config.latent_channels < 1:
            raise UserError(f"expected an encoder config with block_out_channels, layers_per_block >= 1 and positive channel "
                            f"counts, got {config.to_dict()} (in {source})")
        for c in config.block_out_channels:
            if c <= 0 or c % config.norm_num_groups:
                raise UserError(f"encoder channels {config.block_out_channels} must be multiples of "
                                f"norm_num_groups={config.norm_num_groups} (in {source})")
        return config


SD_V15_LAYOUT = "sd-v1.5"


@dataclass(frozen=True)
class LayoutPairing:
    """The decoder and step count SnapFusion runs a UNet layout with (paper Sec. 5): SD-v1.5, the
    baseline, the full-width decoder for 50 steps; the efficient UNets the slim decoder (0.5 width)
    for 8 steps (preset estimates, full-size benchmark models)."""

    slim_decoder: bool

    @classmethod
    def of(cls, layout: UNetLayout) -> "LayoutPairing":
        """By the layout's name (what it is, not the path or preset it was read from)."""
        return cls(slim_decoder=layout.name != SD_V15_LAYOUT)

    @property
    def decoder(self) -> DecoderConfig:
        return DecoderConfig(width_multiplier=0.5 if self.slim_decoder else 1.0)

    @property
    def steps(self) -> int:
        return 8 if self.slim_decoder else 50


BETA_SCHEDULES = ("scaled_linear", "linear")
PREDICTION_TYPES = ("epsilon", "v_prediction")
TIMESTEP_SPACINGS = ("trailing", "leading", "linspace")


@dataclass(frozen=True)
class SchedulerConfig:
    """The noise schedule and sampler settings shared by training, pipeline.json and Swift."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"  # "scaled_linear" | "linear"
    prediction_type: str = "epsilon"  # "epsilon" | "v_prediction"
    timestep_spacing: str = "trailing"  # "trailing" | "leading" | "linspace"
    steps_offset: int = 0  # only used by "leading" spacing (SD-v1.5's scheduler config has 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "scheduler config") -> "SchedulerConfig":
        """Unknown keys (diffusers' other scheduler settings) are ignored."""
        def choice(options: tuple[str, ...]):
            return lambda f, key, default: f.string(key, options, default)

        return cls(**typed_fields(cls, JsonFields(data, "", source), beta_schedule=choice(BETA_SCHEDULES),
                                  prediction_type=choice(PREDICTION_TYPES), timestep_spacing=choice(TIMESTEP_SPACINGS)))


@dataclass(frozen=True)
class PipelineDefaults:
    """Sampling defaults recorded with a model and copied into pipeline.json."""

    steps: int = 8
    guidance_scale: float = 7.5  # diffusers' convention: 1 = no guidance
    latent_scale_factor: float = 0.18215
    image_size: int = 512

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "sampling defaults") -> "PipelineDefaults":
        """Unknown keys are ignored."""
        return cls(**typed_fields(cls, JsonFields(data, "", source)))

