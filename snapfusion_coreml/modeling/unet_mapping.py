"""Load weights trained for one UNet layout into another.

Every block that exists in both layouts (same stage, kind, index and tensor shapes) is mapped.
A new block is initialised by copying the nearest block of the same kind and shapes in the same
stage of the source (SnapFusion's "copy" action). With no such block it starts as the identity:
its output projection (transformer) or last conv (ResNet) is zero, so the network computes what
it computed before the block was added. Source blocks that nothing uses are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..config import UNetLayout, plan_blocks
from ..errors import UserError
from .attention import AttentionImpl
from .checkpoint import checkpoint_state_dict, load_weights
from .unet import SnapFusionUNet


@dataclass
class MappingReport:
    mapped: list[str] = field(default_factory=list)  # same name in both
    copied: dict[str, str] = field(default_factory=dict)  # new block -> source block it copies
    identity: list[str] = field(default_factory=list)  # new blocks initialised as identity
    dropped: list[str] = field(default_factory=list)  # source blocks not used

    def summary(self) -> str:
        lines = [f"mapped {len(self.mapped)} blocks, copied {len(self.copied)}, "
                 f"new identity {len(self.identity)}, dropped {len(self.dropped)}"]
        lines += [f"  copied  {dst} <- {src}" for dst, src in self.copied.items()]
        lines += [f"  new     {name} (identity init)" for name in self.identity]
        lines += [f"  dropped {name}" for name in self.dropped]
        return "\n".join(lines)


def check_compatible(src: UNetLayout, dst: UNetLayout, source: str) -> None:
    """Raise a clear UserError when dst's widths or interfaces cannot hold src's weights."""
    for attr in ("in_channels", "out_channels", "cross_attention_dim", "norm_num_groups", "use_linear_projection"):
        if getattr(src, attr) != getattr(dst, attr):
            raise UserError(f"layout {dst.name!r} does not fit the weights: expected {attr}={getattr(src, attr)}, "
                            f"the layout has {getattr(dst, attr)} (in {source})")
    if src.num_levels != dst.num_levels:
        raise UserError(f"layout {dst.name!r} does not fit the weights: expected {src.num_levels} resolution levels, "
                        f"the layout has {dst.num_levels} (in {source})")
    for (name, s, _), (_, d, _) in zip(src.stages(), dst.stages()):
        if s.width != d.width:
            raise UserError(f"layout {dst.name!r} does not fit the weights: stage {name} is {s.width} channels wide "
                            f"in the weights, {d.width} in the layout (in {source})")
        if (s.num_transformers and d.num_transformers) and (s.heads != d.heads or s.transformer_depth != d.transformer_depth):
            raise UserError(f"layout {dst.name!r} does not fit the weights: stage {name} transformer heads/depth "
                            f"{s.heads}/{s.transformer_depth} vs {d.heads}/{d.transformer_depth} (in {source})")


def _block_tensors(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}


def _shapes(tensors: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in tensors.items()}


def map_unet_state(src_state: dict[str, torch.Tensor], src_layout: UNetLayout, dst_layout: UNetLayout,
                   source: str = "weights", seed: int = 0) -> tuple[dict[str, torch.Tensor], MappingReport]:
    """A checkpoint state dict for dst_layout built from src_state (see module docstring)."""
    check_compatible(src_layout, dst_layout, source)
    torch.manual_seed(seed)
    fresh = checkpoint_state_dict(SnapFusionUNet(dst_layout, AttentionImpl.ORIGINAL))
    src_blocks = {s.name: s for s in plan_blocks(src_layout)}
    dst_plan = plan_blocks(dst_layout)
    block_prefixes = tuple(src_blocks) + tuple(s.name for s in dst_plan)
    report = MappingReport()
    used: set[str] = set()

    # 1. tensors outside blocks (time embedding, conv_in/out, resamplers) map one to one
    out = {}
    for key, value in fresh.items():
        if key.startswith(tuple(p + "." for p in block_prefixes)):
            continue
        if key not in src_state or tuple(src_state[key].shape) != tuple(value.shape):
            raise UserError(f"layout {dst_layout.name!r} does not fit the weights: {key} missing or of another shape (in {source})")
        out[key] = src_state[key]

    # 2. blocks: same name, else nearest same-kind block of the same shapes, else identity
    for spec in dst_plan:
        want = _block_tensors(fresh, spec.name)
        candidates = sorted(
            (s for s in src_blocks.values() if s.stage == spec.stage and s.kind == spec.kind),
            key=lambda s: (s.name != spec.name, abs(s.index - spec.index), s.index),
        )
        match = next((s for s in candidates if _shapes(_block_tensors(src_state, s.name)) == _shapes(want)), None)
        if match is None:
            tensors = _identity_init(want, spec.kind)
            report.identity.append(spec.name)
        else:
            tensors = _block_tensors(src_state, match.name)
            used.add(match.name)
            if match.name == spec.name:
                report.mapped.append(spec.name)
            else:
                report.copied[spec.name] = match.name
        out.update({f"{spec.name}.{k}": v.clone() for k, v in tensors.items()})
    report.dropped = [name for name in src_blocks if name not in used]
    return out, report


def _identity_init(tensors: dict[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """Fresh weights whose residual branch outputs zero, so the block starts as the identity."""
    zero = ("proj_out.",) if kind == "transformer" else ("conv2.",)
    return {k: (torch.zeros_like(v) if k.startswith(zero) else v) for k, v in tensors.items()}


def map_unet_weights(src: SnapFusionUNet, dst_layout: UNetLayout, seed: int = 0,
                     attention: AttentionImpl | None = None) -> tuple[SnapFusionUNet, MappingReport]:
    """A new UNet of dst_layout initialised from `src` (a teacher of another layout)."""
    state, report = map_unet_state(checkpoint_state_dict(src), src.layout, dst_layout, "source UNet", seed)
    dst = SnapFusionUNet(dst_layout, attention or src.attention)
    load_weights(dst, state, "mapped weights")
    return dst, report
