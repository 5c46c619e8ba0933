"""Estimated iPhone latency from MACs and bytes moved per op on a Neural Engine roofline.

Every op (conv, linear, attention matmul, softmax, norm, activation, add) costs
    time = max(MACs / MAC_RATE, memory) + OP_OVERHEAD_S
    memory = weight bytes / WEIGHT_BANDWIDTH
             + sum over activation tensors read or written:
                 size / DRAM_BANDWIDTH  if size > ON_CHIP_BYTES (spills)  else  size / SRAM_BANDWIDTH
with fp16 weights and activations (2 bytes per element) and no cross-op fusion. The two-level
memory term is what reproduces the device: SD-v1.5's 64x64 self-attention writes and reads an
(B * 8, 4096, 4096) map (~537 MB at batch 2) that cannot stay on chip, while SnapFusion's
layout has no attention at 64x64 and only 33 MB maps at 32x32. MACs alone fall 24%; the
estimate falls ~5.6x (the device: 7.4x).

The constants are *effective* rates, not datasheet values (A16 Neural Engine: 17 TOPS = 8.5e12
MACs/s; LPDDR5: 51.2 GB/s). `calibrate()` fits them (a deterministic grid search bounded by
those peaks; weights stream at the datasheet rate) to the iPhone 14 Pro numbers of the
SnapFusion paper (Tables 1 and 4), minimising the squared log error of five: SD-v1.5 UNet
~1700 ms/step and SnapFusion UNet 230 ms/step (both taken as CFG batch 2, 512 px), SD decoder 369 ms, the 0.5-width decoder
116 ms and the text encoder 4 ms. The fit gives 1572 / 189 / 502 / 123 / 4.1 ms: UNet ratio 8.3
(device 7.4), decoder ratio 4.1 (device 3.2); tests/latency/test_cost_model.py re-runs the fit
and checks the constants below are its result. Every number this module produces is an estimate
and is labelled as one (LatencyTable.estimated = True).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import RESNET, BlockSpec, DecoderConfig, UNetLayout, plan_blocks
from ..image_size import VAE_FACTOR
from ..tokenizer import MAX_LENGTH
from .table import LatencyEntry, LatencyTable

BYTES_PER_ELEMENT = 2  # fp16 on the Neural Engine
MAC_RATE = 4.0e12  # effective multiply-accumulates per second (fitted; peak 8.5e12)
DRAM_BANDWIDTH = 8.0e9  # effective bytes/s for activations that spill off chip (fitted; LPDDR5 peak 51.2e9)
SRAM_BANDWIDTH = 64e9  # effective bytes/s for activations that stay on chip (fitted: 8 x DRAM)
WEIGHT_BANDWIDTH = 51.2e9  # weights stream sequentially at the LPDDR5 datasheet rate (not fitted)
ON_CHIP_BYTES = 64 * 2**20  # a tensor larger than this spills to DRAM (fitted)
OP_OVERHEAD_S = 0.0  # per-op dispatch cost in seconds (fitted: no measurable benefit)

ESTIMATE_DEVICE = {"model": "iPhone15,2 (iPhone 14 Pro), estimated", "os": "cost model", "compute_units": "cpuAndNeuralEngine"}
# What `latency estimate --json` estimates for: the device the constants are calibrated on (its
# `hw.machine`, as device benchmark JSON records it).
ESTIMATE_DEVICE_MODEL = "iPhone15,2"

# SnapFusion paper Tables 1 and 4, iPhone 14 Pro (ms): what the constants are calibrated on
CALIBRATION_MS = {"unet:sd-v1.5": 1700.0, "unet:snapfusion": 230.0, "decoder:1.0": 369.0, "decoder:0.5": 116.0,
                  "text_encoder": 4.0}

# CLIP ViT-L/14 text tower (SD-v1.x text encoder)
CLIP_TEXT = {"hidden": 768, "layers": 12, "heads": 12, "intermediate": 3072, "tokens": MAX_LENGTH}


@dataclass(frozen=True)
class Machine:
    """The roofline's constants (effective values, see the module docstring)."""

    mac_rate: float = MAC_RATE
    dram_bandwidth: float = DRAM_BANDWIDTH
    sram_bandwidth: float = SRAM_BANDWIDTH
    on_chip_bytes: float = ON_CHIP_BYTES
    op_overhead_s: float = OP_OVERHEAD_S


@dataclass(frozen=True)
class Op:
    name: str
    macs: float
    activations: tuple[float, ...]  # element counts of every activation tensor read or written
    weights: float = 0.0  # weight elements (always streamed from DRAM)

    @property
    def bytes(self) -> float:
        return BYTES_PER_ELEMENT * (self.weights + sum(self.activations))

    def seconds(self, m: Machine = Machine()) -> float:
        memory = BYTES_PER_ELEMENT * self.weights / WEIGHT_BANDWIDTH
        for numel in self.activations:
            size = BYTES_PER_ELEMENT * numel
            memory += size / (m.dram_bandwidth if size > m.on_chip_bytes else m.sram_bandwidth)
        return max(self.macs / m.mac_rate, memory) + m.op_overhead_s


def ops_ms(ops: list[Op], machine: Machine = Machine()) -> float:
    return 1e3 * sum(op.seconds(machine) for op in ops)


# --- op builders (all sizes in elements; B = batch) -------------------------------------------
def conv(name: str, b: int, h: int, w: int, cin: int, cout: int, k: int = 1, stride: int = 1) -> Op:
    ho, wo = h // stride, w // stride
    return Op(name, b * ho * wo * cin * cout * k * k, (b * h * w * cin, b * ho * wo * cout), cin * cout * k * k)


def linear(name: str, b: int, tokens: int, cin: int, cout: int) -> Op:
    return conv(name, b, tokens, 1, cin, cout)


def elementwise(name: str, numel: int, inputs: int = 1) -> Op:
    """Norms, activations, residual adds: read `inputs` tensors, write one."""
    return Op(name, numel, (numel,) * (inputs + 1))


def attention(name: str, b: int, heads: int, queries: int, keys: int, channels: int, kv_channels: int) -> list[Op]:
    """Scores Q K^T, softmax, scores V: the (B * heads, Sq, Sk) map is written and read back."""
    d = channels // heads
    scores = b * heads * queries * keys
    q, kv = b * queries * channels, b * keys * kv_channels
    return [
        Op(f"{name}.scores", scores * d, (q, kv, scores)),
        elementwise(f"{name}.softmax", scores),
        Op(f"{name}.values", scores * d, (scores, kv, q)),
    ]


# --- UNet blocks ----------------------------------------------------------------------------------
def resnet_ops(b: int, side: int, cin: int, cout: int, temb: int | None) -> list[Op]:
    hw = side * side
    ops = [elementwise("norm1", b * hw * cin), elementwise("silu1", b * hw * cin),
           conv("conv1", b, side, side, cin, cout, 3)]
    if temb:
        ops += [linear("time_emb_proj", b, 1, temb, cout), elementwise("add_temb", b * hw * cout, 2)]
    ops += [elementwise("norm2", b * hw * cout), elementwise("silu2", b * hw * cout),
            conv("conv2", b, side, side, cout, cout, 3)]
    if cin != cout:
        ops.append(conv("conv_shortcut", b, side, side, cin, cout, 1))
    ops.append(elementwise("add_residual", b * hw * cout, 2))
    return ops


def transformer_ops(b: int, side: int, c: int, heads: int, depth: int, context: int, context_dim: int) -> list[Op]:
    s = side * side
    ops = [elementwise("norm", b * s * c), conv("proj_in", b, side, side, c, c)]
    for i in range(depth):
        p = f"transformer_blocks.{i}"
        ops += [elementwise(f"{p}.norm1", b * s * c), linear(f"{p}.attn1.qkv", b, s, c, 3 * c)]
        ops += attention(f"{p}.attn1", b, heads, s, s, c, c)
        ops += [linear(f"{p}.attn1.out", b, s, c, c), elementwise(f"{p}.add1", b * s * c, 2),
                elementwise(f"{p}.norm2", b * s * c), linear(f"{p}.attn2.q", b, s, c, c),
                linear(f"{p}.attn2.kv", b, context, context_dim, 2 * c)]
        ops += attention(f"{p}.attn2", b, heads, s, context, c, c)
        ops += [linear(f"{p}.attn2.out", b, s, c, c), elementwise(f"{p}.add2", b * s * c, 2),
                elementwise(f"{p}.norm3", b * s * c), linear(f"{p}.ff.geglu", b, s, c, 8 * c),
                elementwise(f"{p}.ff.gate", b * s * 4 * c, 2), linear(f"{p}.ff.out", b, s, 4 * c, c),
                elementwise(f"{p}.add3", b * s * c, 2)]
    ops += [conv("proj_out", b, side, side, c, c), elementwise("add_residual", b * s * c, 2)]
    return ops


def block_ops(spec: BlockSpec, layout: UNetLayout, latent_side: int, batch: int, context: int = MAX_LENGTH) -> list[Op]:
    side = latent_side // 2**spec.level
    if spec.kind == RESNET:
        return resnet_ops(batch, side, spec.in_channels, spec.out_channels, layout.time_embed_dim)
    return transformer_ops(batch, side, spec.out_channels, spec.heads, spec.depth, context, layout.cross_attention_dim)


def unet_other_ops(layout: UNetLayout, latent_side: int, batch: int) -> list[Op]:
    """Everything outside the blocks: time embedding, conv_in/out, down- and upsamplers."""
    c0, temb = layout.down[0].width, layout.time_embed_dim
    ops = [linear("time_embedding.linear_1", batch, 1, c0, temb), linear("time_embedding.linear_2", batch, 1, temb, temb),
           conv("conv_in", batch, latent_side, latent_side, layout.in_channels, c0, 3)]
    for i, stage in enumerate(layout.down[:-1]):
        side = latent_side // 2**i
        ops.append(conv(f"down_blocks.{i}.downsamplers.0", batch, side, side, stage.width, stage.width, 3, stride=2))
    levels = layout.num_levels
    for i, stage in enumerate(layout.up[:-1]):
        side = latent_side // 2 ** (levels - 1 - i) * 2  # after nearest-neighbour upsampling
        ops += [elementwise(f"up_blocks.{i}.upsamplers.0.interpolate", batch * side * side * stage.width),
                conv(f"up_blocks.{i}.upsamplers.0.conv", batch, side, side, stage.width, stage.width, 3)]
    c_last = layout.up[-1].width
    ops += [elementwise("conv_norm_out", batch * latent_side**2 * c_last), elementwise("conv_act", batch * latent_side**2 * c_last),
            conv("conv_out", batch, latent_side, latent_side, c_last, layout.out_channels, 3)]
    return ops


# --- decoder and text encoder ---------------------------------------------------------------------
def decoder_ops(config: DecoderConfig, latent_side: int) -> list[Op]:
    """SD's VAE decoder (post_quant_conv + Decoder) at batch 1, with config's width multiplier."""
    channels = list(reversed(config.channels))
    side, c = latent_side, channels[0]
    ops = [conv("post_quant_conv", 1, side, side, config.latent_channels, config.latent_channels),
           conv("conv_in", 1, side, side, config.latent_channels, c, 3)]
    ops += resnet_ops(1, side, c, c, None)
    ops += [elementwise("mid.attn.norm", side * side * c), linear("mid.attn.qkv", 1, side * side, c, 3 * c)]
    ops += attention("mid.attn", 1, 1, side * side, side * side, c, c)
    ops += [linear("mid.attn.out", 1, side * side, c, c), elementwise("mid.attn.add", side * side * c, 2)]
    ops += resnet_ops(1, side, c, c, None)
    for i, out in enumerate(channels):
        for _ in range(config.layers_per_block + 1):
            ops += resnet_ops(1, side, c, out, None)
            c = out
        if i < len(channels) - 1:
            side *= 2
            ops += [elementwise(f"up.{i}.interpolate", side * side * c), conv(f"up.{i}.upsample", 1, side, side, c, c, 3)]
    ops += [elementwise("norm_out", side * side * c), elementwise("act_out", side * side * c),
            conv("conv_out", 1, side, side, c, config.out_channels, 3)]
    return ops


def text_encoder_ops(hidden: int = CLIP_TEXT["hidden"], layers: int = CLIP_TEXT["layers"], heads: int = CLIP_TEXT["heads"],
                     intermediate: int = CLIP_TEXT["intermediate"], tokens: int = CLIP_TEXT["tokens"]) -> list[Op]:
    """A CLIP text transformer at batch 1 (the app runs it once per prompt)."""
    ops: list[Op] = []
    for i in range(layers):
        ops += [elementwise(f"layers.{i}.ln1", tokens * hidden), linear(f"layers.{i}.qkv", 1, tokens, hidden, 3 * hidden)]
        ops += attention(f"layers.{i}.attn", 1, heads, tokens, tokens, hidden, hidden)
        ops += [linear(f"layers.{i}.out", 1, tokens, hidden, hidden), elementwise(f"layers.{i}.ln2", tokens * hidden),
                linear(f"layers.{i}.fc1", 1, tokens, hidden, intermediate), elementwise(f"layers.{i}.gelu", tokens * intermediate),
                linear(f"layers.{i}.fc2", 1, tokens, intermediate, hidden)]
    return ops


# --- tables and end-to-end estimates --------------------------------------------------------------
def estimate_table(layout: UNetLayout, image_size: int = 512, batch: int = 2) -> LatencyTable:
    """A latency table (docs/contracts.md section 4) for every block of `layout`, estimated=True."""
    latent = image_size // VAE_FACTOR
    if latent % layout.latent_divisor:
        from ..errors import UserError

        raise UserError(f"expected an image size whose latent side is a multiple of {layout.latent_divisor}, got {image_size}")
    entries = []
    for spec in plan_blocks(layout):
        ms = ops_ms(block_ops(spec, layout, latent, batch))
        entries.append(LatencyEntry(spec.stage, spec.index, spec.kind, latent // 2**spec.level, spec.out_channels,
                                    spec.in_channels, batch, round(ms, 6), round(ms, 6)))
    return LatencyTable(tuple(entries), dict(ESTIMATE_DEVICE), True, layout.name, image_size)


@dataclass(frozen=True)
class PipelineEstimate:
    """Estimated iPhone 14 Pro milliseconds (every field is an estimate)."""

    table: LatencyTable
    unet_other_ms: float  # conv_in/out, samplers, time embedding
    text_encoder_ms: float  # one prompt; with CFG the app encodes two (prompt and negative prompt)
    decoder_ms: float
    steps: int
    text_encoder_runs: int = 2
    unet_calls: int | None = None  # UNet calls per image (None: one per step); each at the table's batch

    @property
    def unet_step_ms(self) -> float:
        """One UNet call at the table's batch (2: CFG in one call)."""
        return self.table.total_ms() + self.unet_other_ms

    @property
    def end_to_end_ms(self) -> float:
        calls = self.steps if self.unet_calls is None else self.unet_calls
        return self.text_encoder_runs * self.text_encoder_ms + calls * self.unet_step_ms + self.decoder_ms


def estimate_unet_step_ms(layout: UNetLayout, image_size: int = 512, batch: int = 2) -> float:
    latent = image_size // VAE_FACTOR
    return estimate_table(layout, image_size, batch).total_ms() + ops_ms(unet_other_ops(layout, latent, batch))


def estimate_decoder_ms(config: DecoderConfig, image_size: int = 512) -> float:
    return ops_ms(decoder_ops(config, image_size // config.latent_factor))


def estimate_pipeline(layout: UNetLayout, decoder: DecoderConfig, steps: int, image_size: int = 512,
                      unet_batch: int = 2, text: dict[str, int] | None = None, unet_calls: int | None = None) -> PipelineEstimate:
    """Text encoder (x2 with CFG, else x1) + unet_calls (default: steps) x UNet at `unet_batch`
    (2: CFG in one call) + decoder, all estimated."""
    latent = image_size // decoder.latent_factor
    return PipelineEstimate(
        table=estimate_table(layout, image_size, unet_batch),
        unet_other_ms=ops_ms(unet_other_ops(layout, latent, unet_batch)),
        text_encoder_ms=ops_ms(text_encoder_ops(**(text or {}))),
        decoder_ms=estimate_decoder_ms(decoder, image_size),
        steps=steps,
        text_encoder_runs=unet_batch,
        unet_calls=unet_calls,
    )


MAC_RATE_PEAK = 8.5e12  # A16 Neural Engine: 17 TOPS = 8.5e12 MACs/s, the grid's upper bound
DRAM_BANDWIDTH_PEAK = 51.2e9  # iPhone 14 Pro LPDDR5, the grid's upper bound


def calibrate(sd: UNetLayout, snapfusion: UNetLayout) -> Machine:
    """The Machine minimising the squared log error of the four CALIBRATION_MS numbers.

    A vectorised grid search: MAC rate and DRAM bandwidth on quarter-octave grids (2 significant
    digits) up to the datasheet peaks, on-chip bandwidth as a multiple of DRAM's, the on-chip
    capacity and the per-op overhead from short lists. Deterministic, so the module constants
    can be checked against it.
    """
    models = {
        "unet:sd-v1.5": _unet_ops(sd), "unet:snapfusion": _unet_ops(snapfusion),
        "decoder:1.0": decoder_ops(DecoderConfig(), 64), "decoder:0.5": decoder_ops(DecoderConfig(width_multiplier=0.5), 64),
        "text_encoder": text_encoder_ops(),
    }
    targets = np.log(np.array(list(CALIBRATION_MS.values())))
    macs_grid = np.array(_grid(0.5e12, MAC_RATE_PEAK))[:, None, None, None]
    dram_grid = np.array(_grid(2e9, DRAM_BANDWIDTH_PEAK))[None, :, None, None]
    sram_mult = np.array([1.0, 2.0, 4.0, 8.0, 16.0])[None, None, :, None]
    best, best_err = Machine(), math.inf
    for on_chip_mb in (8, 16, 24, 32, 48, 64):
        cache = on_chip_mb * 2**20
        for overhead in (0.0, 1e-5, 3e-5, 1e-4):
            logs = []
            for ops in models.values():
                macs = np.array([op.macs for op in ops])
                weights = np.array([BYTES_PER_ELEMENT * op.weights for op in ops])
                sizes = [[BYTES_PER_ELEMENT * a for a in op.activations] for op in ops]
                spilled = np.array([sum(x for x in op if x > cache) for op in sizes])
                resident = np.array([sum(x for x in op if x <= cache) for op in sizes])
                memory = weights / WEIGHT_BANDWIDTH + spilled / dram_grid + resident / (dram_grid * sram_mult)
                seconds = np.maximum(macs / macs_grid, memory) + overhead
                logs.append(np.log(1e3 * seconds.sum(axis=-1)))
            err = sum((lg - t) ** 2 for lg, t in zip(logs, targets))
            i, j, k = np.unravel_index(np.argmin(err), err.shape)
            if err[i, j, k] < best_err:
                dram = float(dram_grid[0, j, 0, 0])
                best_err = float(err[i, j, k])
                best = Machine(float(macs_grid[i, 0, 0, 0]), dram, dram * float(sram_mult[0, 0, k, 0]), cache, overhead)
    return best


def _unet_ops(layout: UNetLayout, batch: int = 2) -> list[Op]:
    ops = [op for spec in plan_blocks(layout) for op in block_ops(spec, layout, 64, batch)]
    return ops + unet_other_ops(layout, 64, batch)


def _grid(low: float, high: float) -> list[float]:
    values, v = [], low
    while v <= high * 1.0001:
        values.append(float(f"{v:.2g}"))
        v *= 2**0.25
    return values + [high] if values[-1] < high else values
