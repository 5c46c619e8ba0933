"""Weight decoders for Core ML's compression ops (`constexpr_*`), in numpy.

They run once per program (the interpreter caches their outputs) and mirror the MIL spec:
  constexpr_lut_to_dense          iOS16: packed indices + one LUT (2^n,) + output shape;
                                  iOS18: unpacked indices + LUT (*G, 2^n, V) with per-group
                                  tables (G divides each dim of indices) and vector palettes
  constexpr_affine_dequantize     iOS16: (q - zero_point) * scale along `axis`
  constexpr_blockwise_shift_scale iOS18: scale * (data - offset), blocks = data.shape / scale.shape
  constexpr_sparse_to_dense       iOS16: packed bit mask + shape; iOS18: unpacked mask
  constexpr_lut_to_sparse, constexpr_sparse_blockwise_shift_scale
                                  iOS18 joint compression: (mask, nonzero values) pairs
  constexpr_cast                  iOS16/18: a dtype conversion
Sub-byte values are packed least-significant bit first, as coremltools writes them.
"""

from __future__ import annotations

import numpy as np

from .registry import kernel

_NP_DTYPES = {"fp16": np.float16, "fp32": np.float32, "int8": np.int8, "uint8": np.uint8,
              "int16": np.int16, "uint16": np.uint16, "int32": np.int32}


def unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """`count` unsigned `nbits`-bit values from LSB-first packed bytes -> uint8 (count,)."""
    bits = np.unpackbits(np.asarray(packed).view(np.uint8).reshape(-1), bitorder="little")
    bits = bits[: count * nbits].reshape(count, nbits).astype(np.uint16)
    return (bits << np.arange(nbits, dtype=np.uint16)).sum(axis=1).astype(np.uint8)


def _group_ids(full_shape, group_shape) -> np.ndarray:
    """Flat index of the group (block) every element of `full_shape` belongs to."""
    gid = np.zeros((1,) * len(full_shape), dtype=np.int64)
    for d, (n, g) in enumerate(zip(full_shape, group_shape)):
        coord = (np.arange(n) // (n // g)).reshape([-1 if i == d else 1 for i in range(len(full_shape))])
        gid = gid * g + coord
    return np.broadcast_to(gid, full_shape)


def _repeat_blocks(values: np.ndarray, full_shape) -> np.ndarray:
    """Expand per-block `values` (each dim divides full_shape) to full_shape."""
    for d, n in enumerate(full_shape):
        if values.shape[d] != n:
            values = np.repeat(values, n // values.shape[d], axis=d)
    return values


def _lut_lookup(indices: np.ndarray, lut: np.ndarray, vector_axis) -> np.ndarray:
    """iOS18 LUT decode: indices (*I), lut (*G, P, V) -> (*I) with `vector_axis` grown by V."""
    rank = indices.ndim
    groups = lut.shape[:rank]
    palettes, vsize = lut.shape[-2], lut.shape[-1]
    table = lut.reshape(-1, palettes, vsize)  # (G, P, V)
    gid = _group_ids(indices.shape, groups)
    picked = table[gid, indices.astype(np.int64)]  # (*I, V)
    if vsize == 1:
        return picked[..., 0]
    va = int(vector_axis) % rank
    picked = np.moveaxis(picked, va, -2)  # (..., I_va, V)
    out = picked.reshape(*picked.shape[:-2], -1)
    return np.moveaxis(out, -1, va)


@kernel("constexpr_lut_to_dense", constexpr=True)
def constexpr_lut_to_dense(indices, lut, shape=None, vector_axis=None):
    if shape is not None:  # iOS16: packed indices, one LUT of 2^nbits entries
        shape = [int(s) for s in np.asarray(shape).reshape(-1)]
        nbits = int(np.log2(lut.size))
        idx = unpack_bits(indices, nbits, int(np.prod(shape)))
        return np.asarray(lut).reshape(-1)[idx].reshape(shape)
    return _lut_lookup(np.asarray(indices), np.asarray(lut), vector_axis)


@kernel("constexpr_affine_dequantize", constexpr=True)
def constexpr_affine_dequantize(quantized_data, zero_point, scale, axis):
    """(q - zero_point) * scale; zero_point and scale are scalars or vectors along `axis`."""
    q = np.asarray(quantized_data)
    shape = [1] * q.ndim
    shape[int(axis) % q.ndim] = -1
    zp = np.asarray(zero_point).astype(np.float32)
    sc = np.asarray(scale)
    zp = zp.reshape(shape) if zp.size > 1 else zp.reshape(())
    scf = sc.astype(np.float32).reshape(shape) if sc.size > 1 else sc.astype(np.float32).reshape(())
    return ((q.astype(np.float32) - zp) * scf).astype(sc.dtype)


@kernel("constexpr_blockwise_shift_scale", constexpr=True)
def constexpr_blockwise_shift_scale(data, scale, offset=None):
    """scale * (data - offset) with one (scale, offset) per block of data.shape / scale.shape."""
    data = np.asarray(data)
    scale = np.asarray(scale)
    out = data.astype(np.float32)
    if offset is not None:
        out = out - _repeat_blocks(np.asarray(offset).astype(np.float32), data.shape)
    return (out * _repeat_blocks(scale.astype(np.float32), data.shape)).astype(scale.dtype)


@kernel("constexpr_sparse_to_dense", constexpr=True)
def constexpr_sparse_to_dense(nonzero_data, mask, shape=None):
    nonzero_data = np.asarray(nonzero_data)
    if shape is not None:  # iOS16: bit mask packed LSB first, output shape given
        shape = [int(s) for s in np.asarray(shape).reshape(-1)]
        count = int(np.prod(shape))
        bits = np.unpackbits(np.asarray(mask).view(np.uint8), bitorder="little")[:count]
    else:  # iOS18: mask has the output's shape
        shape = list(np.asarray(mask).shape)
        bits = np.asarray(mask).reshape(-1)
    out = np.zeros(int(np.prod(shape)), dtype=nonzero_data.dtype)
    out[bits != 0] = nonzero_data.reshape(-1)
    return out.reshape(shape)


@kernel("constexpr_lut_to_sparse", constexpr=True)
def constexpr_lut_to_sparse(indices_mask, indices_nonzero_data, lut, vector_axis=None):
    """-> (mask, nonzero values): the LUT decode applied to the nonzero entries only."""
    mask = np.asarray(indices_mask)
    dense_idx = np.zeros(mask.shape, dtype=np.uint8)
    dense_idx[mask != 0] = np.asarray(indices_nonzero_data).reshape(-1)
    dense = _lut_lookup(dense_idx, np.asarray(lut), vector_axis)
    if lut.shape[-1] > 1:
        mask = np.repeat(mask, lut.shape[-1], axis=int(vector_axis) % mask.ndim)
    return mask, dense[mask != 0].reshape(-1)


@kernel("constexpr_sparse_blockwise_shift_scale", constexpr=True)
def constexpr_sparse_blockwise_shift_scale(data_mask, nonzero_data, scale, offset=None):
    """-> (mask, nonzero values) with the block-wise dequantisation applied to the nonzeros."""
    mask = np.asarray(data_mask)
    dense = np.zeros(mask.shape, dtype=np.float32)
    dense[mask != 0] = np.asarray(nonzero_data).astype(np.float32).reshape(-1)
    decoded = constexpr_blockwise_shift_scale(dense, scale, offset)
    return mask, decoded[mask != 0].reshape(-1)


@kernel("constexpr_cast", constexpr=True)
def constexpr_cast(source_val, output_dtype):
    return np.asarray(source_val).astype(_NP_DTYPES[str(output_dtype)])
