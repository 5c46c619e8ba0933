"""Reduction kernels: reduce_* over `axes` (None = all), argmax/argmin over one axis."""

from __future__ import annotations

import torch

from .registry import axes_or_all, float_of, kernel, scalar


def _reduction(fn):
    def run(x, axes=None, keep_dims=False):
        dims = axes_or_all(axes, x.dim())
        if not dims:
            return x
        return fn(x, dims, bool(keep_dims))

    return run


_REDUCTIONS = {
    "reduce_sum": lambda x, d, k: torch.sum(x, dim=d, keepdim=k),
    "reduce_mean": lambda x, d, k: torch.mean(float_of(x), dim=d, keepdim=k),
    "reduce_prod": lambda x, d, k: _prod(x, d, k),
    "reduce_max": lambda x, d, k: torch.amax(x, dim=d, keepdim=k),
    "reduce_min": lambda x, d, k: torch.amin(x, dim=d, keepdim=k),
    "reduce_l1_norm": lambda x, d, k: torch.sum(torch.abs(x), dim=d, keepdim=k),
    "reduce_l2_norm": lambda x, d, k: torch.sqrt(torch.sum(x * x, dim=d, keepdim=k)),
    "reduce_sum_square": lambda x, d, k: torch.sum(x * x, dim=d, keepdim=k),
    "reduce_log_sum": lambda x, d, k: torch.log(torch.sum(x, dim=d, keepdim=k)),
    "reduce_log_sum_exp": lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k),
}


def _prod(x, dims, keep):
    for d in sorted(dims, reverse=True):
        x = torch.prod(x, dim=d, keepdim=keep)
    return x


for _name, _fn in _REDUCTIONS.items():
    kernel(_name, exact=_name in ("reduce_max", "reduce_min"))(_reduction(_fn))


@kernel("reduce_argmax")
def reduce_argmax(x, axis=-1, keep_dims=False, output_dtype="int32"):
    # torch.argmax returns the first maximal index, like numpy and Core ML.
    return torch.argmax(x, dim=int(scalar(axis)), keepdim=bool(keep_dims)).to(torch.int32)


@kernel("reduce_argmin")
def reduce_argmin(x, axis=-1, keep_dims=False, output_dtype="int32"):
    return torch.argmin(x, dim=int(scalar(axis)), keepdim=bool(keep_dims)).to(torch.int32)
