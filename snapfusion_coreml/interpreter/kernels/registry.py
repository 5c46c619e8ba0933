"""The kernel registry: one CPU implementation per Core ML (MIL) op type, written once.

A kernel is a plain function whose keyword arguments are the op's MIL parameter names
(`x`, `y`, `axes`, `keep_dims`, ...). The interpreter passes
  - dynamic tensors as torch tensors: floats as float32, integers as int32 (int64 where the
    program declares it), booleans as bool;
  - constant scalars as Python scalars (float, int, bool, str);
  - constant arrays as torch tensors of the same kinds.
A kernel returns one value per MIL output (a tuple for several). It never modifies its inputs:
weights are shared between runs. The interpreter casts every result to the dtype the program
declares for it, so kernels compute in float32 and need not round.

Compression kernels (`constexpr_*`) are the exception: they decode weights once per program,
get and return numpy arrays, and their results are cached with the program.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class Kernel:
    op_type: str
    fn: Callable
    exact: bool  # outputs only select/copy input values: no rounding needed after it
    constexpr: bool  # a compile-time weight decoder working on numpy arrays


KERNELS: dict[str, Kernel] = {}


def kernel(*op_types: str, exact: bool = False, constexpr: bool = False):
    """Register `fn` as the kernel of every op type in `op_types`."""

    def register(fn: Callable) -> Callable:
        for op_type in op_types:
            if op_type in KERNELS:
                raise ValueError(f"expected one kernel per op type, got two for {op_type!r}")
            KERNELS[op_type] = Kernel(op_type, fn, exact, constexpr)
        return fn

    return register


# --- helpers shared by the kernel modules ------------------------------------------------


def ints(value) -> list[int]:
    """A shape-like parameter (tensor, array, list or scalar) as a list of Python ints."""
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.reshape(-1).tolist()]
    if isinstance(value, np.ndarray):
        return [int(v) for v in value.reshape(-1).tolist()]
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


def scalar(value):
    """A rank-0 parameter (tensor or Python scalar) as a Python scalar."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.reshape(-1)[0].item()
    return value


def bools(value, rank: int) -> list[bool]:
    """A mask parameter (None = all False) as a list of `rank` Python bools."""
    if value is None:
        return [False] * rank
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return [bool(v) for v in value.reshape(-1).tolist()]
    if isinstance(value, (list, tuple)):
        return [bool(v) for v in value]
    return [bool(value)] * rank


def tensor(value, like: torch.Tensor | None = None) -> torch.Tensor:
    """A Python scalar or tensor as a tensor (float32 for floats, like `like` if given)."""
    if isinstance(value, torch.Tensor):
        return value
    if like is not None:
        return torch.tensor(value, dtype=like.dtype)
    if isinstance(value, bool):
        return torch.tensor(value)
    if isinstance(value, int):
        return torch.tensor(value, dtype=torch.int32)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    return torch.tensor(value, dtype=torch.float32)


def axis(value, rank: int) -> int:
    """A (possibly negative) axis normalised to [0, rank)."""
    a = int(scalar(value))
    return a + rank if a < 0 else a


def axes_or_all(value, rank: int) -> list[int]:
    """Reduction axes, normalised and sorted; None means every axis."""
    if value is None:
        return list(range(rank))
    return sorted(a + rank if a < 0 else a for a in ints(value))


def channel_view(param: torch.Tensor, rank: int, axis_: int = 1) -> torch.Tensor:
    """A per-channel vector (C,) shaped to broadcast on `axis_` of a rank-`rank` tensor."""
    shape = [1] * rank
    shape[axis_] = -1
    return param.reshape(shape)


def float_of(value) -> torch.Tensor | float:
    """Integers and booleans promoted to float32 (for ops that are float-only in torch)."""
    if isinstance(value, torch.Tensor) and not value.is_floating_point():
        return value.to(torch.float32)
    if isinstance(value, (bool, int)):
        return float(value)
    return value


def same_kind(values: Sequence):
    """Tensors/scalars converted to one common torch dtype (for concat, stack, select)."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if not tensors:
        return [tensor(v) for v in values]
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return [tensor(v).to(dtype) for v in values]
