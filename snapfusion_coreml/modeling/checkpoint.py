"""Weights on disk: safetensors by default, pickle only when asked; checkpoint <-> module layouts.

Checkpoints keep diffusers' tensor shapes: a Linear weight is (out, in) even where our module is
a 1x1 conv for the Neural Engine. `load_weights` reshapes at load, `checkpoint_state_dict` back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, TypeVar

import torch
from torch import nn

from ..errors import UserError
from ..io import atomic_file
from .attention import Conv1x1
from .safetensors_file import SafetensorsFormatError, read_safetensors

M = TypeVar("M", bound=nn.Module)


def read_state_dict(path: Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of one weights file; a clear UserError for missing, truncated or corrupt files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            return read_safetensors(path)
        except SafetensorsFormatError as exc:
            raise UserError(f"expected a valid safetensors file, got a corrupt or truncated one: {exc} (in {path})") from None
    if not allow_pickle:
        raise UserError(f"refusing to load pickle checkpoint {path}: pickle can run code; pass --allow-pickle if you trust it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"expected a torch checkpoint, got an unreadable file: {exc} (in {path})") from None


# File names diffusers and transformers have written, preferred first: full-precision safetensors,
# the ".fp16" variant (diffusers' `variant="fp16"`), then the pickle forms of both.
WEIGHT_STEMS = ("diffusion_pytorch_model", "model")
PICKLE_STEMS = ("diffusion_pytorch_model", "pytorch_model")
VARIANTS = ("", ".fp16")


def weight_candidates() -> tuple[list[str], list[str]]:
    """(safetensors names, pickle names) in order of preference."""
    safe = [f"{stem}{variant}.safetensors" for variant in VARIANTS for stem in WEIGHT_STEMS]
    pickle = [f"{stem}{variant}.bin" for variant in VARIANTS for stem in PICKLE_STEMS]
    return safe, pickle


def find_weights(directory: Path, allow_pickle: bool = False) -> Path:
    """The weights file of a component folder: safetensors preferred, full precision before fp16."""
    safe, pickle = weight_candidates()
    for name in safe:
        if (directory / name).is_file():
            return directory / name
    for name in pickle:
        if (directory / name).is_file():
            if not allow_pickle:
                raise UserError(f"only a pickle checkpoint found: {directory / name}; pass --allow-pickle if you trust it")
            return directory / name
    raise UserError(f"expected one of {', '.join(safe)} in {directory}, found none")


def _linear_as_conv(module: nn.Module) -> set[str]:
    return {f"{name}.weight" for name, m in module.named_modules() if isinstance(m, Conv1x1)}


def checkpoint_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's weights in diffusers' shapes (1x1-conv Linears squeezed to (out, in))."""
    linear = _linear_as_conv(module)
    return {k: (v[:, :, 0, 0] if k in linear else v).detach().contiguous() for k, v in module.state_dict().items()}


def load_weights(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Strictly load a diffusers-shaped state dict; every missing/unexpected key and shape
    mismatch is reported in one UserError naming `source`."""
    own = module.state_dict()
    fixed = {}
    for key, value in state.items():
        if key in own and value.dim() == 2 and own[key].dim() == 4 and own[key].shape[2:] == (1, 1):
            value = value[:, :, None, None]  # Linear weight into a 1x1 conv
        fixed[key] = value
    missing = sorted(set(own) - set(fixed))
    unexpected = sorted(set(fixed) - set(own))
    mismatched = [f"{k}: expected {tuple(own[k].shape)}, got {tuple(fixed[k].shape)}"
                  for k in own if k in fixed and tuple(fixed[k].shape) != tuple(own[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing keys {_abbreviate(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_abbreviate(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches {_abbreviate(mismatched)}")
    if problems:
        raise UserError(f"expected weights matching the model config, got {'; '.join(problems)} (in {source})")
    assign = any(t.is_meta for t in own.values())  # built by load_new: adopt the tensors as they are
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in fixed.items()}, strict=True, assign=assign)


def load_new(build: Callable[[], M], state: Mapping[str, torch.Tensor], source: str) -> M:
    """build() on the meta device, then `state`'s tensors adopted as its weights (load_weights'
    checks and reshapes). A model built the ordinary way holds a second, randomly initialised copy
    of every weight next to `state` while loading: for an SD-1.5 UNet that doubled conversion's
    peak memory (3.4 GB of fp32 weights; benchmarks/results/convert_memory.md). Modules with
    buffers that are not in their state dict cannot be built this way."""
    with torch.device("meta"):
        module = build()
    load_weights(module, state, source)
    left = [name for name, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left:
        raise ValueError(f"{type(module).__name__} has tensors outside its state dict: {left[:4]}")
    return module


def _abbreviate(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', ... {len(items) - limit} more' if len(items) > limit else ''}] ({len(items)})"


def save_weights(module: nn.Module, path: Path, dtype: torch.dtype | None = None) -> None:
    """Write the module's checkpoint state dict as safetensors (cast to dtype if given), atomically (io.atomic_file)."""
    from safetensors.torch import save_file

    state = checkpoint_state_dict(module)
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    with atomic_file(path) as tmp:
        save_file(state, str(tmp))
