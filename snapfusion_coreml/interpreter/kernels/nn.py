"""Neural-network kernels: linear algebra, convolutions, pooling, resizing, normalisations,
softmax and attention."""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .registry import axes_or_all, channel_view, ints, kernel, scalar, tensor

# --- linear algebra ------------------------------------------------------------------------------


@kernel("linear")
def linear(x, weight, bias=None):
    """x (*, in), weight (out, in), bias (out,) -> (*, out)."""
    return F.linear(x, weight, bias)


@kernel("matmul")
def matmul(x, y, transpose_x=False, transpose_y=False):
    """numpy matmul semantics (batch broadcasting, rank-1 operands) with optional transposes."""
    x, y = tensor(x), tensor(y)
    if transpose_x and x.dim() > 1:
        x = x.transpose(-1, -2)
    if transpose_y and y.dim() > 1:
        y = y.transpose(-1, -2)
    return torch.matmul(x, y)


@kernel("einsum")
def einsum(values, equation):
    return torch.einsum(equation, *values)


# --- convolutions and pooling --------------------------------------------------------------------

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _same_pads(sizes, kernels, strides, dilations, lower: bool) -> list[int]:
    """[b0, e0, b1, e1, ...] for "same" padding; `lower` puts the odd pixel at the beginning."""
    pads: list[int] = []
    for n, k, s, d in zip(sizes, kernels, strides, dilations):
        total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
        small, big = total // 2, total - total // 2
        pads += [big, small] if lower else [small, big]
    return pads


def _spatial_pads(pad_type, pad, sizes, kernels, strides, dilations) -> list[int]:
    n = len(sizes)
    if pad_type == "valid":
        return [0] * (2 * n)
    if pad_type == "custom":
        return ints(pad) if pad is not None else [0] * (2 * n)
    if pad_type in ("same", "same_lower"):
        return _same_pads(sizes, kernels, strides, dilations, pad_type == "same_lower")
    raise ValueError(f"expected pad_type valid, custom, same or same_lower, got {pad_type}")


def _pad_input(x, pads, value=0.0):
    """Pad the spatial dims with [b0, e0, b1, e1, ...]; returns x and the symmetric part."""
    n = len(pads) // 2
    if all(pads[2 * i] == pads[2 * i + 1] for i in range(n)):
        return x, [pads[2 * i] for i in range(n)]
    torch_pad: list[int] = []
    for i in reversed(range(n)):
        torch_pad += [pads[2 * i], pads[2 * i + 1]]
    return F.pad(x, torch_pad, value=value), [0] * n


@kernel("conv")
def conv(x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    """x (B, C_in, *S), weight (C_out, C_in / groups, *K) -> (B, C_out, *S')."""
    n = x.dim() - 2
    strides = ints(strides) if strides is not None else [1] * n
    dilations = ints(dilations) if dilations is not None else [1] * n
    pads = _spatial_pads(pad_type, pad, x.shape[2:], weight.shape[2:], strides, dilations)
    x, sym = _pad_input(x, pads)
    return _CONV[n](x, weight, bias, stride=strides, padding=sym, dilation=dilations, groups=int(scalar(groups)))


@kernel("conv_transpose")
def conv_transpose(x, weight, bias=None, pad=None, output_shape=None, pad_type="valid",
                   strides=None, dilations=None, groups=1):
    """x (B, C_in, *S), weight (C_in, C_out / groups, *K) -> (B, C_out, *S')."""
    n = x.dim() - 2
    strides = ints(strides) if strides is not None else [1] * n
    dilations = ints(dilations) if dilations is not None else [1] * n
    full = _CONV_T[n](x, weight, bias, stride=strides, dilation=dilations, groups=int(scalar(groups)))
    sizes = full.shape[2:]
    if output_shape is not None:
        target = ints(output_shape)[-n:]
        crops = [[0, s - t] for s, t in zip(sizes, target)]
    elif pad_type in ("same", "same_lower"):
        target = [s * st for s, st in zip(x.shape[2:], strides)]
        crops = []
        for s, t in zip(sizes, target):
            total = s - t
            small, big = total // 2, total - total // 2
            crops.append([big, small] if pad_type == "same_lower" else [small, big])
    elif pad_type == "custom" and pad is not None:
        p = ints(pad)
        crops = [[p[2 * i], p[2 * i + 1]] for i in range(n)]
    else:
        crops = [[0, 0]] * n
    for i, (b, e) in enumerate(crops):
        full = full.narrow(2 + i, b, full.shape[2 + i] - b - e)
    return full


def _pool(x, kernel_sizes, strides, pad_type, pad, ceil_mode, fill):
    n = x.dim() - 2
    k = ints(kernel_sizes)
    s = ints(strides) if strides is not None else [1] * n
    pads = _spatial_pads(pad_type, pad, x.shape[2:], k, s, [1] * n)
    torch_pad: list[int] = []
    for i in reversed(range(n)):
        torch_pad += [pads[2 * i], pads[2 * i + 1]]
    return F.pad(x, torch_pad, value=fill), k, s, bool(ceil_mode)


_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


@kernel("max_pool", exact=True)
def max_pool(x, kernel_sizes, pad_type, strides=None, pad=None, ceil_mode=False):
    padded, k, s, ceil = _pool(x, kernel_sizes, strides, pad_type, pad, ceil_mode, -math.inf)
    return _MAX[len(k)](padded, k, s, ceil_mode=ceil)


@kernel("avg_pool")
def avg_pool(x, kernel_sizes, pad_type, strides=None, pad=None, ceil_mode=False,
             exclude_padding_from_average=False):
    padded, k, s, ceil = _pool(x, kernel_sizes, strides, pad_type, pad, ceil_mode, 0.0)
    total = _AVG[len(k)](padded, k, s, ceil_mode=ceil)
    if not exclude_padding_from_average:
        return total
    ones, *_ = _pool(torch.ones_like(x[:1, :1]), kernel_sizes, strides, pad_type, pad, ceil_mode, 0.0)
    return total / _AVG[len(k)](ones, k, s, ceil_mode=ceil)


@kernel("l2_pool")
def l2_pool(x, kernel_sizes, pad_type, strides=None, pad=None, ceil_mode=False):
    padded, k, s, ceil = _pool(x * x, kernel_sizes, strides, pad_type, pad, ceil_mode, 0.0)
    return torch.sqrt(_AVG[len(k)](padded, k, s, ceil_mode=ceil) * math.prod(k))


# --- resizing --------------------------------------------------------------------------------------


@kernel("upsample_nearest_neighbor", exact=True)
def upsample_nearest_neighbor(x, scale_factor_height=1.0, scale_factor_width=1.0):
    """x (*, H, W) -> (*, floor(H sh), floor(W sw)); source pixel floor(dst / scale)."""
    sh, sw = float(scalar(scale_factor_height)), float(scalar(scale_factor_width))
    if sh.is_integer() and sw.is_integer():
        return x.repeat_interleave(int(sh), dim=-2).repeat_interleave(int(sw), dim=-1)
    rows = (torch.arange(math.floor(x.shape[-2] * sh)) / sh).floor().long().clamp(max=x.shape[-2] - 1)
    cols = (torch.arange(math.floor(x.shape[-1] * sw)) / sw).floor().long().clamp(max=x.shape[-1] - 1)
    return x.index_select(-2, rows).index_select(-1, cols)


@kernel("resize_nearest_neighbor", exact=True)
def resize_nearest_neighbor(x, target_size_height, target_size_width):
    h, w = int(scalar(target_size_height)), int(scalar(target_size_width))
    rows = (torch.arange(h) * (x.shape[-2] / h)).floor().long().clamp(max=x.shape[-2] - 1)
    cols = (torch.arange(w) * (x.shape[-1] / w)).floor().long().clamp(max=x.shape[-1] - 1)
    return x.index_select(-2, rows).index_select(-1, cols)


def _grid(mode: str, n_in: int, n_out: int) -> torch.Tensor:
    """Source coordinates of every output pixel for one axis (MIL resize_bilinear's modes)."""
    i = torch.arange(n_out, dtype=torch.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if n_out == 1:
            g = torch.full((1,), (n_in - 1) / 2 if mode == "ALIGN_CORNERS" else 0.0, dtype=torch.float64)
        else:
            g = i * (n_in - 1) / (n_out - 1)
    elif mode == "DEFAULT":
        g = i * ((n_in - n_in / n_out) / (n_out - 1)) if n_out > 1 else i * 0
    elif mode == "OFFSET_CORNERS":
        delta = max(1, n_in - 1) / n_out
        g = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        g = (i + 0.5) * (n_in / n_out) - 0.5
    else:
        raise ValueError(f"expected a resize_bilinear sampling_mode, got {mode}")
    return g.clamp(0, n_in - 1)


def _lerp_axis(x: torch.Tensor, dim: int, coords: torch.Tensor) -> torch.Tensor:
    lo = coords.floor().long()
    hi = (lo + 1).clamp(max=x.shape[dim] - 1)
    frac_shape = [1] * x.dim()
    frac_shape[dim] = -1
    frac = (coords - lo).to(x.dtype).reshape(frac_shape)
    a, b = x.index_select(dim, lo), x.index_select(dim, hi)
    return a + (b - a) * frac


def _bilinear(x, out_h: int, out_w: int, mode: str) -> torch.Tensor:
    y = _lerp_axis(x, x.dim() - 2, _grid(mode, x.shape[-2], out_h))
    return _lerp_axis(y, x.dim() - 1, _grid(mode, x.shape[-1], out_w))


@kernel("resize_bilinear")
def resize_bilinear(x, target_size_height=1, target_size_width=1, sampling_mode="DEFAULT"):
    return _bilinear(x, int(scalar(target_size_height)), int(scalar(target_size_width)), sampling_mode)


@kernel("upsample_bilinear")
def upsample_bilinear(x, scale_factor_height=1.0, scale_factor_width=1.0, align_corners=True,
                      half_pixel_centers=None):
    sh, sw = float(scalar(scale_factor_height)), float(scalar(scale_factor_width))
    out_h, out_w = math.floor(x.shape[-2] * sh), math.floor(x.shape[-1] * sw)
    if half_pixel_centers is None:
        half_pixel_centers = not align_corners
    if align_corners:
        mode = "STRICT_ALIGN_CORNERS"
    elif half_pixel_centers:
        mode = "UNALIGN_CORNERS"
    else:  # legacy: source = destination / scale
        y = _lerp_axis(x, x.dim() - 2, (torch.arange(out_h, dtype=torch.float64) / sh).clamp(0, x.shape[-2] - 1))
        return _lerp_axis(y, x.dim() - 1, (torch.arange(out_w, dtype=torch.float64) / sw).clamp(0, x.shape[-1] - 1))
    return _bilinear(x, out_h, out_w, mode)


# --- normalisation ---------------------------------------------------------------------------------


@kernel("batch_norm")
def batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    """x (B, C, *), per-channel statistics (C,) on axis 1."""
    r = x.dim()
    out = (x - channel_view(mean, r)) * channel_view(torch.rsqrt(variance + epsilon), r)
    if gamma is not None:
        out = out * channel_view(gamma, r)
    if beta is not None:
        out = out + channel_view(beta, r)
    return out


@kernel("instance_norm")
def instance_norm(x, gamma=None, beta=None, epsilon=1e-5):
    """x (B, C, *S): normalised over *S for every (b, c); gamma, beta (C,)."""
    dims = list(range(2, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=False)
    out = (x - mean) * torch.rsqrt(var + epsilon)
    if gamma is not None:
        out = out * channel_view(gamma, x.dim())
    if beta is not None:
        out = out + channel_view(beta, x.dim())
    return out


@kernel("layer_norm")
def layer_norm(x, axes=None, gamma=None, beta=None, epsilon=1e-5):
    """Normalise over `axes`; gamma and beta have the shape of x on those axes."""
    dims = axes_or_all(axes, x.dim())
    trailing = dims == list(range(x.dim() - len(dims), x.dim()))
    if trailing:
        return F.layer_norm(x, x.shape[x.dim() - len(dims):], gamma, beta, float(epsilon))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, keepdim=True, unbiased=False)
    out = (x - mean) * torch.rsqrt(var + epsilon)
    shape = [x.shape[d] if d in dims else 1 for d in range(x.dim())]
    if gamma is not None:
        out = out * gamma.reshape(shape)
    if beta is not None:
        out = out + beta.reshape(shape)
    return out


@kernel("l2_norm")
def l2_norm(x, epsilon=1e-6):
    """Divide by sqrt(sum of squares + eps) over the last three dims (batch-wise before them)."""
    dims = list(range(max(0, x.dim() - 3), x.dim()))
    return x / torch.sqrt(torch.sum(x * x, dim=dims, keepdim=True) + epsilon)


@kernel("local_response_norm")
def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    return F.local_response_norm(x, int(scalar(size)), alpha=float(alpha), beta=float(beta), k=float(k))


@kernel("softmax")
def softmax(x, axis=-1):
    return torch.softmax(x, dim=int(scalar(axis)))


@kernel("scaled_dot_product_attention")
def scaled_dot_product_attention(query, key, value, attn_mask=None):
    """query (*B, L, E), key (*B, S, E), value (*B, S, EV); a bool mask is True where kept."""
    return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask)
