"""The weight decoders (constexpr_* kernels) against coremltools' own decompression code."""

from __future__ import annotations

import numpy as np
import pytest
from coremltools.converters.mil.mil.ops.defs.iOS16 import constexpr_ops as ios16
from coremltools.converters.mil.mil.ops.defs.iOS18 import compression as ios18
from coremltools.optimize import _utils as optimize_utils

from snapfusion_coreml.interpreter.kernels import KERNELS

RNG = np.random.default_rng(0)


def decode(op_type: str, **kwargs):
    assert KERNELS[op_type].constexpr
    return KERNELS[op_type].fn(**kwargs)


@pytest.mark.parametrize("nbits", [1, 2, 3, 4, 6, 8])
def test_lut_ios16_packed_indices(nbits):
    shape = (6, 5, 3, 3)  # 270 elements: not a multiple of 8 bits for every nbits
    indices = RNG.integers(0, 2**nbits, size=int(np.prod(shape))).astype(np.uint8)
    lut = RNG.standard_normal(2**nbits).astype(np.float16)
    packed = optimize_utils.pack_elements_into_bits(indices, nbits)
    got = decode("constexpr_lut_to_dense", indices=packed, lut=lut, shape=np.array(shape, dtype=np.uint32))
    np.testing.assert_array_equal(got, ios16.constexpr_lut_to_dense.decompress(lut, packed, shape))
    np.testing.assert_array_equal(got, lut[indices].reshape(shape))


@pytest.mark.parametrize("lut_groups, vector, vector_axis", [
    ((1, 1, 1, 1), 1, None),  # per tensor
    ((4, 1, 1, 1), 1, None),  # per grouped channel: 4 groups of 2 output channels
    ((2, 3, 1, 1), 1, None),  # blocks on two axes
    ((1, 1, 1, 1), 2, 0),  # vector palettization along the output channels
    ((2, 1, 1, 1), 3, 1),
])
def test_lut_ios18_grouped_and_vector(lut_groups, vector, vector_axis):
    nbits = 4
    out_shape = [8, 6, 3, 3]
    idx_shape = [d // vector if i == vector_axis else d for i, d in enumerate(out_shape)]
    indices = RNG.integers(0, 2**nbits, size=idx_shape).astype(np.uint8)
    lut = RNG.standard_normal((*lut_groups, 2**nbits, vector)).astype(np.float16)
    got = decode("constexpr_lut_to_dense", indices=indices, lut=lut, vector_axis=vector_axis)
    expected = optimize_utils.lut_to_dense(indices, lut, vector_axis)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("axis, per_channel", [(0, True), (1, True), (0, False)])
def test_affine_dequantize(axis, per_channel):
    q = RNG.integers(-128, 128, size=(6, 4, 3, 3)).astype(np.int8)
    n = q.shape[axis] if per_channel else 1
    scale = RNG.uniform(0.001, 0.1, size=n).astype(np.float16)
    zero = RNG.integers(-5, 5, size=n).astype(np.int8)
    if not per_channel:
        scale, zero = scale[0], zero[0]
    got = decode("constexpr_affine_dequantize", quantized_data=q, zero_point=zero, scale=scale, axis=axis)
    expected = ios16.constexpr_affine_dequantize.decompress(q, zero, scale, axis)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("with_offset", [True, False])
def test_blockwise_shift_scale(with_offset):
    data = RNG.integers(-8, 8, size=(8, 12, 1, 1)).astype(np.int8)  # int4 values
    scale = RNG.uniform(0.01, 0.1, size=(8, 3, 1, 1)).astype(np.float16)
    offset = RNG.integers(-2, 2, size=(8, 3, 1, 1)).astype(np.int8) if with_offset else None
    got = decode("constexpr_blockwise_shift_scale", data=data, scale=scale, offset=offset)
    expected = ios18.constexpr_blockwise_shift_scale.decompress(data, scale, offset)
    np.testing.assert_allclose(got.astype(np.float32), expected.astype(np.float32), rtol=1e-3, atol=1e-6)


def test_sparse_to_dense_ios16_and_ios18():
    shape = (5, 4, 3, 3)
    mask = RNG.random(shape) > 0.5
    values = RNG.standard_normal(int(mask.sum())).astype(np.float16)
    packed = np.packbits(mask.reshape(-1), bitorder="little")
    got16 = decode("constexpr_sparse_to_dense", nonzero_data=values, mask=packed, shape=np.array(shape, np.uint32))
    np.testing.assert_array_equal(got16, ios16.constexpr_sparse_to_dense.decompress(values, packed, shape))
    got18 = decode("constexpr_sparse_to_dense", nonzero_data=values, mask=mask.astype(np.uint8))
    np.testing.assert_array_equal(got18, ios18.constexpr_sparse_to_dense.decompress(values, mask.astype(np.uint8)))
    np.testing.assert_array_equal(got16, got18)


def test_joint_sparse_lut_and_sparse_shift_scale():
    mask = (RNG.random((4, 6)) > 0.4).astype(np.uint8)
    nnz = int(mask.sum())
    idx = RNG.integers(0, 4, size=nnz).astype(np.uint8)
    lut = RNG.standard_normal((1, 1, 4, 2)).astype(np.float16)
    got_mask, got_vals = decode("constexpr_lut_to_sparse", indices_mask=mask, indices_nonzero_data=idx,
                                lut=lut, vector_axis=0)
    exp_mask, exp_vals = ios18.constexpr_lut_to_sparse.decompress(mask, idx, lut, 0)
    np.testing.assert_array_equal(got_mask, exp_mask)
    np.testing.assert_array_equal(got_vals, exp_vals)

    data = RNG.integers(-8, 8, size=nnz).astype(np.int8)
    scale = RNG.uniform(0.1, 1, size=(1, 6)).astype(np.float16)
    offset = RNG.integers(-2, 2, size=(1, 6)).astype(np.int8)
    got_mask, got_vals = decode("constexpr_sparse_blockwise_shift_scale", data_mask=mask, nonzero_data=data,
                                scale=scale, offset=offset)
    exp_mask, exp_vals = ios18.constexpr_sparse_blockwise_shift_scale.decompress(mask, data, scale, offset)
    np.testing.assert_array_equal(got_mask, exp_mask)
    np.testing.assert_allclose(got_vals.astype(np.float32), exp_vals.astype(np.float32), rtol=1e-3)


def test_constexpr_cast():
    x = RNG.standard_normal(10).astype(np.float16)
    got = decode("constexpr_cast", source_val=x, output_dtype="fp32")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, x.astype(np.float32))
