"""Initialise a slim VAE decoder by L2-norm channel pruning of a full one (SnapFusion Sec. 3.2).

The paper prunes 50% of the decoder's channels uniformly and then distils the slim decoder from
the full one; it does not say how the kept channels are chosen. Here:

- Every tensor in the decoder lives in a "channel space". Channels that are added together share
  a space: a resnet's input and output (identity shortcut), a conv_shortcut's output and conv2's
  output, the attention's input and its to_out output. Group norm, SiLU and the nearest-neighbour
  interpolation of an upsampler act per channel, so they stay in their input's space.
- A residual space keeps the channels with the largest summed L2 norm over every filter that
  writes into it (conv_in, conv2, conv_shortcut, to_out.0, an upsampler conv).
- A resnet's conv1 output is its own space, chosen by conv1's filter norms; attention q/k share
  one space (chosen by the summed q and k filter norms), v and to_out's input another.
- Each consumer's input channels, and each GroupNorm's affine parameters, follow the space.
- The latent channels (post_quant_conv, conv_in's input) and the image channels (conv_out's
  output) are never pruned.
- An upsampler conv's output opens a new space (a conv output is not added to its input); when
  the next block has an identity shortcut, that space is the next stage's residual stream.
- Kept indices are sorted, so channels keep their relative order (and roughly their norm groups);
  width_multiplier 1.0 therefore reproduces the full decoder exactly.
- The slim attention has fewer channels, hence a larger 1/sqrt(C) scale; to_q is multiplied by
  sqrt(C_slim / C_full) so the slim logits equal the kept channels' share of the full logits.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from ..errors import UserError
from .vae_decoder import VAEDecoder

RESIDUAL = "residual"
INTERNAL = "internal"  # a resnet's conv1 output
ATTENTION = "attention"  # q/k or v/out inner channels
FIXED = "fixed"  # latent and image channels


@dataclass
class _Space:
    kind: str
    full: int
    slim: int


@dataclass
class _Graph:
    """Channel spaces plus every layer's (in, out) spaces and every norm's space, by module name."""

    spaces: dict[str, _Space] = field(default_factory=dict)
    layers: list[tuple[str, str, str]] = field(default_factory=list)  # (conv/linear, in space, out space)
    norms: list[tuple[str, str]] = field(default_factory=list)  # (GroupNorm, space)

    def space(self, name: str, kind: str, full: int, slim: int) -> str:
        self.spaces[name] = _Space(kind, full, slim)
        return name


def _channel_graph(full: VAEDecoder, slim: VAEDecoder) -> _Graph:
    """Walk the decoder in execution order, recording which channel space each tensor lives in."""
    g = _Graph()
    cf, cs = full.config, slim.config
    widths = list(zip(reversed(cf.channels), reversed(cs.channels)))  # (full, slim), deepest first
    latent = g.space("latent", FIXED, cf.latent_channels, cf.latent_channels)
    image = g.space("image", FIXED, cf.out_channels, cf.out_channels)

    def resnet(prefix: str, x: str, out_full: int, out_slim: int) -> str:
        g.norms.append((f"{prefix}.norm1", x))
        inner = g.space(f"{prefix}.conv1", INTERNAL, out_full, out_slim)
        g.layers.append((f"{prefix}.conv1", x, inner))
        g.norms.append((f"{prefix}.norm2", inner))
        in_full, in_slim = g.spaces[x].full, g.spaces[x].slim
        if (in_full != out_full) != (in_slim != out_slim):
            raise UserError(
                f"expected the slim decoder to have a conv_shortcut at {prefix} exactly where the full one does, "
                f"got widths {in_full}->{out_full} (full) and {in_slim}->{out_slim} (slim) (in prune_decoder)"
            )
        out = x
        if in_full != out_full:
            out = g.space(prefix, RESIDUAL, out_full, out_slim)
            g.layers.append((f"{prefix}.conv_shortcut", x, out))
        g.layers.append((f"{prefix}.conv2", inner, out))
        return out

    # 1. post_quant_conv and conv_in
    g.layers.append(("post_quant_conv", latent, latent))
    x = g.space("decoder.conv_in", RESIDUAL, *widths[0])
    g.layers.append(("decoder.conv_in", latent, x))
    # 2. mid block: resnet, attention, resnet, all in one residual stream
    x = resnet("decoder.mid_block.resnets.0", x, *widths[0])
    attn = "decoder.mid_block.attentions.0"
    g.norms.append((f"{attn}.group_norm", x))
    qk = g.space(f"{attn}.qk", ATTENTION, *widths[0])
    vo = g.space(f"{attn}.v", ATTENTION, *widths[0])
    g.layers += [(f"{attn}.to_q", x, qk), (f"{attn}.to_k", x, qk), (f"{attn}.to_v", x, vo), (f"{attn}.to_out.0", vo, x)]
    x = resnet("decoder.mid_block.resnets.1", x, *widths[0])
    # 3. up blocks
    for i, (w_full, w_slim) in enumerate(widths):
        block = full.decoder.up_blocks[i]
        for j in range(len(block.resnets)):
            x = resnet(f"decoder.up_blocks.{i}.resnets.{j}", x, w_full, w_slim)
        if block.upsamplers is not None:
            up = f"decoder.up_blocks.{i}.upsamplers.0.conv"
            y = g.space(f"decoder.up_blocks.{i}.upsamplers.0", RESIDUAL, w_full, w_slim)
            g.layers.append((up, x, y))
            x = y
    # 4. output
    g.norms.append(("decoder.conv_norm_out", x))
    g.layers.append(("decoder.conv_out", x, image))
    return g


def _select(graph: _Graph, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Kept channel indices (sorted) of every space: top summed filter L2 norms of its writers."""
    scores = {name: torch.zeros(s.full, dtype=torch.float64) for name, s in graph.spaces.items()}
    for module, _, out in graph.layers:
        w = weights[f"{module}.weight"].detach().to(torch.float64)
        scores[out] += w.flatten(1).norm(dim=1)  # one norm per output filter
    keep = {}
    for name, s in graph.spaces.items():
        if s.kind == FIXED or s.slim == s.full:
            keep[name] = torch.arange(s.full)
        else:
            # stable sort: equal scores keep the lower index, so the choice is deterministic
            order = torch.argsort(scores[name], descending=True, stable=True)
            keep[name] = order[: s.slim].sort().values
    return keep


def prune_decoder(full: VAEDecoder, width_multiplier: float = 0.5) -> tuple[VAEDecoder, dict]:
    """A slim decoder initialised from `full` by keeping its highest-L2-norm channels.

    The slim decoder's width multiplier is full.config.width_multiplier * width_multiplier.

    Returns:
        (slim decoder, report) with report = {"width_multiplier", "params_before", "params_after",
        "spaces": {name: {"kind", "kept", "total", "indices"}}} for every pruned channel space.
    """
    if not 0.0 < width_multiplier <= 1.0:
        raise UserError(f"expected width_multiplier in (0, 1], got {width_multiplier} (in prune_decoder)")
    config = dataclasses.replace(full.config, width_multiplier=full.config.width_multiplier * width_multiplier)
    slim = VAEDecoder(config)
    graph = _channel_graph(full, slim)
    weights = full.state_dict()
    keep = _select(graph, weights)

    # 1. slice every conv/linear: output rows by its out space, input columns by its in space
    sliced: dict[str, torch.Tensor] = {}
    for module, src, dst in graph.layers:
        w = weights[f"{module}.weight"]
        sliced[f"{module}.weight"] = w.index_select(0, keep[dst].to(w.device)).index_select(1, keep[src].to(w.device))
        sliced[f"{module}.bias"] = weights[f"{module}.bias"].index_select(0, keep[dst].to(w.device))
    # 2. group norm affine parameters follow their space
    for module, space in graph.norms:
        for p in ("weight", "bias"):
            t = weights[f"{module}.{p}"]
            sliced[f"{module}.{p}"] = t.index_select(0, keep[space].to(t.device))
    # 3. keep the attention temperature: slim logits = kept channels' part of the full logits
    attn = "decoder.mid_block.attentions.0"
    qk = graph.spaces[f"{attn}.qk"]
    ratio = math.sqrt(qk.slim / qk.full)
    for p in ("weight", "bias"):
        sliced[f"{attn}.to_q.{p}"] = sliced[f"{attn}.to_q.{p}"] * ratio

    uncovered = set(slim.state_dict()) ^ set(sliced)
    if uncovered:  # the graph walk must cover the model exactly; a failure here is a bug
        raise RuntimeError(f"channel graph and decoder disagree on {sorted(uncovered)}")
    slim.load_state_dict(sliced, strict=True)
    param = next(full.parameters())
    slim = slim.to(device=param.device, dtype=param.dtype)

    report = {
        "width_multiplier": config.width_multiplier,
        "params_before": full.num_parameters(),
        "params_after": slim.num_parameters(),
        "spaces": {
            name: {"kind": s.kind, "kept": s.slim, "total": s.full, "indices": keep[name].tolist()}
            for name, s in graph.spaces.items()
            if s.kind != FIXED
        },
    }
    return slim, report
