"""Shape, layout and indexing kernels: reshape, transpose, concat, split, slices, gathers,
scatters, padding, tiling, fills and friends. Most of them only move values (`exact`)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .registry import axis, bools, ints, kernel, same_kind, scalar, tensor


@kernel("reshape", exact=True)
def reshape(x, shape):
    dims = ints(shape)
    # MIL: 0 copies the input's dimension at that position, -1 is inferred.
    dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


@kernel("reshape_like", exact=True)
def reshape_like(x, ref_tensors, begins, ends, end_masks):
    refs = ref_tensors if isinstance(ref_tensors, (list, tuple)) else [ref_tensors]
    shape: list[int] = []
    for ref, b, e, m in zip(refs, ints(begins), ints(ends), bools(end_masks, len(refs))):
        shape += list(ref.shape[b:] if m else ref.shape[b:e])
    return x.reshape(shape)


@kernel("transpose", exact=True)
def transpose(x, perm):
    return x.permute(ints(perm))


@kernel("expand_dims", exact=True)
def expand_dims(x, axes):
    out_rank = x.dim() + len(ints(axes))
    for a in sorted(a + out_rank if a < 0 else a for a in ints(axes)):
        x = x.unsqueeze(a)
    return x


@kernel("squeeze", exact=True)
def squeeze(x, axes=None):
    if axes is None:
        return x.squeeze()
    return x.squeeze(tuple(axis(a, x.dim()) for a in ints(axes)))


@kernel("flatten2d", exact=True)
def flatten2d(x, axis=1):
    a = int(scalar(axis)) % x.dim() if int(scalar(axis)) < 0 else int(scalar(axis))
    return x.reshape(int(torch.tensor(x.shape[:a]).prod()), -1)


@kernel("concat", exact=True)
def concat(values, axis, interleave=False):
    values = same_kind(values)
    a = int(scalar(axis))
    if interleave:  # [x0[0], x1[0], x0[1], x1[1], ...] along `axis`
        a = a % values[0].dim()
        stacked = torch.stack(values, dim=a + 1)
        shape = list(values[0].shape)
        shape[a] *= len(values)
        return stacked.reshape(shape)
    return torch.cat(values, dim=a)


@kernel("stack", exact=True)
def stack(values, axis):
    return torch.stack(same_kind(values), dim=int(scalar(axis)))


@kernel("split", exact=True)
def split(x, axis, num_splits=None, split_sizes=None):
    a = int(scalar(axis))
    if split_sizes is not None:
        return tuple(torch.split(x, ints(split_sizes), dim=a))
    return tuple(torch.chunk(x, int(scalar(num_splits)), dim=a))


@kernel("slice_by_index", exact=True)
def slice_by_index(x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    """numpy's x[b0:e0:s0, b1:e1:s1, ...] with MIL's masks; squeeze_mask[i] indexes at b_i."""
    rank = x.dim()
    b, e = ints(begin), ints(end)
    s = ints(stride) if stride is not None else [1] * rank
    bm, em, sm = bools(begin_mask, rank), bools(end_mask, rank), bools(squeeze_mask, rank)
    out = x
    squeeze_axes = []
    for i in range(rank):
        size = x.shape[i]
        if sm[i]:
            idx = b[i] + size if b[i] < 0 else b[i]
            out = out.narrow(i, idx, 1)
            squeeze_axes.append(i)
            continue
        start, stop, step = slice(None if bm[i] else b[i], None if em[i] else e[i], s[i]).indices(size)
        if step == 1:
            out = out.narrow(i, start, max(0, stop - start))
        else:
            out = out.index_select(i, torch.arange(start, stop, step, dtype=torch.long))
    return out.squeeze(tuple(squeeze_axes)) if squeeze_axes else out


@kernel("slice_by_size", exact=True)
def slice_by_size(x, begin, size):
    out = x
    for i, (b, n) in enumerate(zip(ints(begin), ints(size))):
        b = b + x.shape[i] if b < 0 else b
        out = out.narrow(i, b, x.shape[i] - b if n == -1 else n)
    return out


@kernel("slice_update")
def slice_update(x, update, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    index = torch.arange(x.numel()).reshape(x.shape)
    picked = slice_by_index(index, begin, end, stride, begin_mask, end_mask, squeeze_mask)
    out = x.clone().reshape(-1)
    out[picked.reshape(-1)] = tensor(update).to(x.dtype).reshape(-1)
    return out.reshape(x.shape)


@kernel("crop", exact=True)
def crop(x, crop_height, crop_width):
    (top, bottom), (left, right) = ints(crop_height), ints(crop_width)
    h, w = x.shape[-2], x.shape[-1]
    return x[..., top : h - bottom, left : w - right]


@kernel("tile", exact=True)
def tile(x, reps):
    return x.repeat(ints(reps))


@kernel("reverse", exact=True)
def reverse(x, axes=None):
    return x.flip(ints(axes) if axes is not None else list(range(x.dim())))


@kernel("pad", exact=True)
def pad(x, pad, mode="constant", constant_val=0.0):
    """pad: [before_0, after_0, before_1, after_1, ...] for the last len(pad)/2 dimensions."""
    p = ints(pad)
    n = len(p) // 2
    torch_pad: list[int] = []
    for d in reversed(range(n)):  # torch lists the last dimension first
        torch_pad += [p[2 * d], p[2 * d + 1]]
    if mode == "constant":
        return F.pad(x, torch_pad, value=float(scalar(constant_val)))
    if mode not in ("reflect", "replicate"):
        raise ValueError(f"expected pad mode constant, reflect or replicate, got {mode}")
    lead = x.shape[: x.dim() - n]
    flat = x.reshape(1, -1, *x.shape[x.dim() - n :]) if n < 3 else x.reshape(-1, *x.shape[x.dim() - n :])
    out = F.pad(flat, torch_pad, mode=mode)
    return out.reshape(*lead, *out.shape[out.dim() - n :])


def _wrap(indices: torch.Tensor, size: int) -> torch.Tensor:
    indices = tensor(indices).to(torch.long)
    return torch.where(indices < 0, indices + size, indices)


@kernel("gather", exact=True)
def gather(x, indices, axis=0, batch_dims=0, validate_indices=False):
    """out.shape = x.shape[:axis] + indices.shape[batch_dims:] + x.shape[axis + 1:]."""
    a = int(scalar(axis)) % x.dim() if int(scalar(axis)) < 0 else int(scalar(axis))
    bd = int(scalar(batch_dims))
    idx = _wrap(indices, x.shape[a])
    if bd == 0:
        out = x.index_select(a, idx.reshape(-1))
        return out.reshape(*x.shape[:a], *idx.shape, *x.shape[a + 1 :])
    batch = x.shape[:bd]
    xs = x.reshape(-1, *x.shape[bd:])
    ids = idx.reshape(-1, *idx.shape[bd:])
    outs = [gather(xs[i], ids[i], a - bd, 0) for i in range(xs.shape[0])]
    return torch.stack(outs).reshape(*batch, *outs[0].shape)


@kernel("gather_along_axis", exact=True)
def gather_along_axis(x, indices, axis=0, validate_indices=False):
    a = int(scalar(axis))
    return torch.gather(x, a, _wrap(indices, x.shape[a]))


@kernel("gather_nd", exact=True)
def gather_nd(x, indices, batch_dims=0, validate_indices=False):
    """indices (*I, K) index x's first K dims after the batch dims: out (*I, *x.shape[bd+K:])."""
    bd = int(scalar(batch_dims))
    idx = tensor(indices).to(torch.long)
    if bd == 0:
        k = idx.shape[-1]
        cols = [_wrap(idx[..., i], x.shape[i]) for i in range(k)]
        return x[tuple(cols)]
    xs = x.reshape(-1, *x.shape[bd:])
    ids = idx.reshape(-1, *idx.shape[bd:])
    outs = [gather_nd(xs[i], ids[i]) for i in range(xs.shape[0])]
    return torch.stack(outs).reshape(*x.shape[:bd], *outs[0].shape)


_REDUCE_MODES = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}


def _scatter_into(flat_out, positions, updates, mode):
    """Apply `updates` at flat `positions` of `flat_out` (a 1-D copy) with a MIL scatter mode."""
    if mode == "update":
        flat_out[positions] = updates
    elif mode in _REDUCE_MODES:
        flat_out.scatter_reduce_(0, positions, updates, _REDUCE_MODES[mode], include_self=True)
    elif mode == "sub":
        flat_out.scatter_add_(0, positions, -updates)
    elif mode == "div":
        flat_out.scatter_reduce_(0, positions, 1.0 / updates, "prod", include_self=True)
    else:
        raise ValueError(f"expected scatter mode update, add, sub, mul, div, max or min, got {mode}")
    return flat_out


@kernel("scatter")
def scatter(data, indices, updates, axis=0, mode="add", validate_indices=False):
    """data[..., indices[i], ...] (on `axis`) combined with updates[..., i, ...]."""
    a = int(scalar(axis)) % data.dim()
    position = torch.arange(data.numel()).reshape(data.shape)
    picked = position.index_select(a, _wrap(indices, data.shape[a]).reshape(-1))
    upd = tensor(updates).to(data.dtype).reshape(picked.shape)
    return _scatter_into(data.clone().reshape(-1), picked.reshape(-1), upd.reshape(-1), mode).reshape(data.shape)


@kernel("scatter_along_axis")
def scatter_along_axis(data, indices, updates, axis=0, mode="add", validate_indices=False):
    a = int(scalar(axis))
    position = torch.arange(data.numel()).reshape(data.shape)
    picked = torch.gather(position, a, _wrap(indices, data.shape[a]))
    upd = tensor(updates).to(data.dtype)
    return _scatter_into(data.clone().reshape(-1), picked.reshape(-1), upd.reshape(-1), mode).reshape(data.shape)


@kernel("scatter_nd")
def scatter_nd(data, indices, updates, mode="add", validate_indices=False):
    position = torch.arange(data.numel()).reshape(data.shape)
    picked = gather_nd(position, indices)
    upd = tensor(updates).to(data.dtype)
    return _scatter_into(data.clone().reshape(-1), picked.reshape(-1), upd.reshape(-1), mode).reshape(data.shape)


@kernel("shape")
def shape(x):
    return torch.tensor(list(x.shape), dtype=torch.int32)


@kernel("fill")
def fill(shape, value=0.0):
    return torch.full(ints(shape), scalar(value))


@kernel("fill_like")
def fill_like(ref_tensor, value=0.0):
    return torch.full(tuple(ref_tensor.shape), scalar(value))


@kernel("range_1d")
def range_1d(end, start, step):
    return torch.arange(scalar(start), scalar(end), scalar(step))


@kernel("band_part", exact=True)
def band_part(x, lower=-1, upper=-1):
    """Keep the band of the last two dims: lower (upper) < 0 keeps the whole lower (upper) part."""
    lower, upper = int(scalar(lower)), int(scalar(upper))
    m = torch.arange(x.shape[-2]).unsqueeze(1)
    n = torch.arange(x.shape[-1]).unsqueeze(0)
    keep = ((lower < 0) | (m - n <= lower)) & ((upper < 0) | (n - m <= upper))
    return torch.where(keep, x, torch.zeros((), dtype=x.dtype))


@kernel("one_hot")
def one_hot(indices, one_hot_vector_size, axis=-1, on_value=1, off_value=0):
    size = int(scalar(one_hot_vector_size))
    hot = F.one_hot(_wrap(indices, size), size).to(torch.bool)
    a = int(scalar(axis))
    hot = hot.movedim(-1, a if a >= 0 else a + hot.dim())
    on, off = scalar(on_value), scalar(off_value)
    return torch.where(hot, torch.tensor(on), torch.tensor(off))


@kernel("non_zero")
def non_zero(x):
    return torch.nonzero(x).to(torch.int32)


@kernel("cumsum")
def cumsum(x, axis=0, exclusive=False, reverse=False):
    a = int(scalar(axis))
    y = x.flip(a) if reverse else x
    out = torch.cumsum(y, dim=a)
    if exclusive:
        out = out - y
    return out.flip(a) if reverse else out


@kernel("topk")
def topk(x, k=1, axis=-1, ascending=False, sort=True, return_indices=True, output_indices_dtype="int32"):
    values, index = torch.topk(x, int(scalar(k)), dim=int(scalar(axis)), largest=not ascending, sorted=True)
    return (values, index.to(torch.int32)) if return_indices else values


@kernel("argsort")
def argsort(x, axis=-1, ascending=False):
    return torch.argsort(x, dim=int(scalar(axis)), descending=not ascending, stable=True).to(torch.int32)


@kernel("sliding_windows", exact=True)
def sliding_windows(x, axis, size, stride=1):
    """Windows of `size` every `stride` on `axis`: (..., n_windows, size, ...)."""
    a = int(scalar(axis)) % x.dim()
    return x.unfold(a, int(scalar(size)), int(scalar(stride))).movedim(-1, a + 1)


@kernel("pixel_shuffle", exact=True)
def pixel_shuffle(x, upscale_factor):
    return F.pixel_shuffle(x, int(scalar(upscale_factor)))


@kernel("pixel_unshuffle", exact=True)
def pixel_unshuffle(x, downscale_factor):
    return F.pixel_unshuffle(x, int(scalar(downscale_factor)))

