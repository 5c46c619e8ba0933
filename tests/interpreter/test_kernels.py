"""Every kernel against an independent reference, table-driven.

Each case builds the op with coremltools' MIL builder (so optional parameters get the defaults
a real program carries), runs our kernel on the op's inputs exactly as the interpreter passes
them, and compares with either coremltools' own value inference of the op (`MIL`, numpy code
written from the spec) or a numpy / torch reference written here.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from snapfusion_coreml.interpreter.execute import coerce
from snapfusion_coreml.interpreter.kernels import KERNELS
from snapfusion_coreml.interpreter.program import to_runtime

MIL = None  # reference: coremltools' value inference of the op
RNG = np.random.default_rng(0)


def f32(*shape, low=-2.0, high=2.0):
    return RNG.uniform(low, high, size=shape).astype(np.float32)


def i32(*values):
    return np.array(values, dtype=np.int32)


def _erf(x):
    return np.vectorize(math.erf)(x.astype(np.float64))


def _t(a):
    return torch.from_numpy(np.asarray(a))


X = f32(2, 3, 4)
Y = f32(3, 1)
POS = f32(2, 3, 4, low=0.1, high=3.0)
UNIT = f32(2, 3, 4, low=-0.9, high=0.9)
B1 = RNG.random((2, 3)) > 0.5
B2 = RNG.random((2, 3)) > 0.5
IMG = f32(1, 4, 6, 6)

CASES = [
    # --- element-wise binary (numpy broadcasting)
    ("add", dict(x=X, y=Y[None]), MIL),
    ("sub", dict(x=X, y=np.float32(0.5)), MIL),
    ("mul", dict(x=X, y=Y[None]), MIL),
    ("real_div", dict(x=X, y=POS), MIL),
    ("floor_div", dict(x=X, y=POS), MIL),
    ("mod", dict(x=X, y=POS), lambda x, y: np.mod(x, y)),
    ("pow", dict(x=POS, y=np.float32(1.7)), MIL),
    ("maximum", dict(x=X, y=Y[None]), MIL),
    ("minimum", dict(x=X, y=Y[None]), MIL),
    ("equal", dict(x=i32(1, 2, 3), y=i32(1, 0, 3)), MIL),
    ("not_equal", dict(x=i32(1, 2, 3), y=i32(1, 0, 3)), MIL),
    ("greater", dict(x=X, y=Y[None]), MIL),
    ("greater_equal", dict(x=i32(1, 2, 3), y=np.int32(2)), MIL),
    ("less", dict(x=X, y=Y[None]), MIL),
    ("less_equal", dict(x=i32(1, 2, 3), y=np.int32(2)), MIL),
    ("logical_and", dict(x=B1, y=B2), MIL),
    ("logical_or", dict(x=B1, y=B2), MIL),
    ("logical_xor", dict(x=B1, y=B2), MIL),
    ("logical_not", dict(x=B1), MIL),
    # --- element-wise unary
    ("abs", dict(x=X), MIL), ("acos", dict(x=UNIT), MIL), ("asin", dict(x=UNIT), MIL),
    ("atan", dict(x=X), MIL), ("atanh", dict(x=UNIT), MIL), ("ceil", dict(x=X), MIL),
    ("cos", dict(x=X), MIL), ("cosh", dict(x=X), MIL), ("erf", dict(x=X), lambda x: _erf(x)),
    ("exp", dict(x=X), MIL), ("exp2", dict(x=X), MIL), ("floor", dict(x=X), MIL),
    ("round", dict(x=X), MIL), ("sign", dict(x=X), MIL), ("sin", dict(x=X), MIL),
    ("sinh", dict(x=X), MIL), ("sqrt", dict(x=POS), MIL), ("square", dict(x=X), MIL),
    ("tan", dict(x=UNIT), MIL), ("tanh", dict(x=X), MIL), ("relu", dict(x=X), MIL),
    ("sigmoid", dict(x=X), MIL), ("silu", dict(x=X), lambda x: x / (1 + np.exp(-x))),
    ("softplus", dict(x=X), MIL), ("softsign", dict(x=X), MIL),
    ("rsqrt", dict(x=POS), MIL), ("rsqrt", dict(x=POS, epsilon=np.float32(0.5)), MIL),
    ("inverse", dict(x=POS), MIL), ("log", dict(x=POS), MIL), ("relu6", dict(x=X * 4), MIL),
    ("gelu", dict(x=X), lambda x: 0.5 * x * (1 + _erf(x / np.sqrt(2)))),
    ("gelu", dict(x=X, mode="TANH_APPROXIMATION"),
     lambda x, mode: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))),
    ("gelu", dict(x=X, mode="SIGMOID_APPROXIMATION"), lambda x, mode: x / (1 + np.exp(-1.702 * x))),
    # --- parametric activations
    ("clip", dict(x=X, alpha=np.float32(-0.5), beta=np.float32(0.7)), MIL),
    ("threshold", dict(x=X, alpha=np.float32(0.3)), MIL),
    ("thresholded_relu", dict(x=X, alpha=np.float32(0.3)), MIL),
    ("leaky_relu", dict(x=X, alpha=np.float32(0.1)), MIL),
    ("elu", dict(x=X, alpha=np.float32(0.7)), MIL),
    ("clamped_relu", dict(x=X, alpha=np.float32(0.1), beta=np.float32(1.0)), MIL),
    ("linear_activation", dict(x=X, alpha=np.float32(2.0), beta=np.float32(-1.0)), MIL),
    ("scaled_tanh", dict(x=X, alpha=np.float32(2.0), beta=np.float32(0.5)), MIL),
    ("sigmoid_hard", dict(x=X, alpha=np.float32(0.2), beta=np.float32(0.5)), MIL),
    ("prelu", dict(x=IMG, alpha=f32(4, low=0, high=1)), MIL),
    ("softplus_parametric", dict(x=IMG, alpha=f32(4, low=0.5, high=1), beta=f32(4, low=0.5, high=1)), MIL),
    ("select", dict(cond=B1, a=f32(2, 3), b=f32(1, 3)), MIL),
    ("cast", dict(x=X, dtype="int32"), MIL),
    ("cast", dict(x=B1, dtype="fp32"), MIL),
    ("cast", dict(x=i32(40000, -1, 7), dtype="int16"), lambda x, dtype: x.astype(np.int16)),  # wraps
    ("cast", dict(x=f32(5) * 3, dtype="int32"), lambda x, dtype: np.trunc(x)),
    ("identity", dict(x=X), MIL),
    # --- shape and layout
    ("reshape", dict(x=X, shape=i32(0, -1, 2)), MIL),
    ("transpose", dict(x=X, perm=i32(2, 0, 1)), MIL),
    ("expand_dims", dict(x=X, axes=i32(-1, 0)), MIL),
    ("squeeze", dict(x=f32(2, 1, 3, 1), axes=i32(1)), MIL),
    ("squeeze", dict(x=f32(2, 1, 3, 1)), MIL),
    ("flatten2d", dict(x=X, axis=np.int32(2)), MIL),
    ("concat", dict(values=[X, f32(2, 1, 4)], axis=np.int32(1)), MIL),
    ("concat", dict(values=[X, X + 1], axis=np.int32(-1), interleave=True),  # spec: out[..., 0::2] = x0
     lambda values, axis, interleave: np.stack(values, axis=-1).reshape(2, 3, 8)),
    ("stack", dict(values=[X, X * 2], axis=np.int32(1)), MIL),
    ("split", dict(x=X, split_sizes=i32(1, 3), axis=np.int32(2)), MIL),
    ("split", dict(x=X, num_splits=np.int32(2), axis=np.int32(-1)), MIL),
    ("slice_by_index", dict(x=X, begin=i32(0, 1, 0), end=i32(2, 3, 4)), MIL),
    ("slice_by_index", dict(x=X, begin=i32(0, 2, -1), end=i32(0, 0, 0), stride=i32(1, -1, -2),
                            begin_mask=np.array([True, False, False]), end_mask=np.array([True, True, True])), MIL),
    ("slice_by_index", dict(x=X, begin=i32(1, 0, 1), end=i32(2, 3, 4), stride=i32(1, 2, 2),
                            squeeze_mask=np.array([True, False, False])), MIL),
    ("slice_by_size", dict(x=X, begin=i32(1, 1, 0), size=i32(1, -1, 3)), MIL),
    ("slice_update", dict(x=X, update=f32(2, 1, 2), begin=i32(0, 1, 0), end=i32(2, 2, 4),
                          stride=i32(1, 1, 2)), MIL),
    ("crop", dict(x=IMG, crop_height=i32(1, 2), crop_width=i32(0, 1)), lambda x, **_: x[..., 1:4, 0:5]),
    ("tile", dict(x=X, reps=i32(1, 2, 3)), MIL),
    ("reverse", dict(x=X, axes=i32(0, 2)), MIL),
    ("pad", dict(x=IMG, pad=i32(1, 2, 0, 3)), MIL),
    ("pad", dict(x=IMG, pad=i32(1, 2, 2, 1), mode="reflect"), MIL),
    ("pad", dict(x=IMG, pad=i32(1, 0, 2, 1), mode="replicate"), MIL),
    ("band_part", dict(x=f32(2, 5, 5), lower=np.int32(1), upper=np.int32(0)), MIL),
    ("band_part", dict(x=f32(5, 5), lower=np.int32(-1), upper=np.int32(2)), MIL),
    ("shape", dict(x=X), MIL),
    ("fill", dict(shape=i32(2, 3), value=np.float32(1.5)), MIL),
    ("fill_like", dict(ref_tensor=X, value=np.float32(-2.0)), lambda ref_tensor, value: np.full(X.shape, value)),
    ("range_1d", dict(end=np.int32(10), start=np.int32(1), step=np.int32(3)), MIL),
    ("range_1d", dict(end=np.float32(2.0), start=np.float32(0.0), step=np.float32(0.5)), MIL),
    ("one_hot", dict(indices=i32(0, 2, 1), one_hot_vector_size=np.int32(4)), lambda indices, **_: np.eye(4)[indices]),
    ("non_zero", dict(x=np.array([[0, 1.5], [2.0, 0]], dtype=np.float32)), MIL),
    ("cumsum", dict(x=X, axis=np.int32(1)), lambda x, axis: np.cumsum(x, 1)),
    ("cumsum", dict(x=X, axis=np.int32(2), exclusive=True, reverse=True),
     lambda x, **_: np.flip(np.cumsum(np.flip(x, 2), 2), 2) - x),
    ("topk", dict(x=X, k=np.int32(2), axis=np.int32(-1)), MIL),
    ("topk", dict(x=X, k=np.int32(2), axis=np.int32(1), ascending=True), MIL),
    ("argsort", dict(x=X, axis=np.int32(-1)), MIL),
    ("sliding_windows", dict(x=X, axis=np.int32(2), size=np.int32(2), stride=np.int32(2)),
     lambda x, **_: x.reshape(2, 3, 2, 2)),
    ("pixel_shuffle", dict(x=f32(1, 8, 2, 3), upscale_factor=np.int32(2)),
     lambda x, upscale_factor: F.pixel_shuffle(_t(x), 2).numpy()),
    ("pixel_unshuffle", dict(x=f32(1, 2, 4, 6), downscale_factor=np.uint32(2)),
     lambda x, downscale_factor: F.pixel_unshuffle(_t(x), 2).numpy()),
    # --- indexing
    ("gather", dict(x=X, indices=i32(2, 0, -1), axis=np.int32(1)), MIL),
    ("gather", dict(x=f32(10, 4), indices=np.array([[1, 9], [3, 3]], dtype=np.int32)), MIL),
    ("gather", dict(x=X, indices=np.array([[0, 2], [1, 1]], dtype=np.int32), axis=np.int32(1),
                    batch_dims=np.int32(1)), MIL),
    ("gather_along_axis", dict(x=X, indices=RNG.integers(0, 4, (2, 3, 2)).astype(np.int32), axis=np.int32(2)), MIL),
    ("gather_nd", dict(x=X, indices=np.array([[0, 2], [1, -1]], dtype=np.int32)),
     lambda x, indices: np.stack([x[0, 2], x[1, -1]])),
    ("gather_nd", dict(x=X, indices=np.array([[[1], [0]], [[2], [2]]], dtype=np.int32), batch_dims=np.int32(1)),
     lambda x, **_: np.stack([x[0, [1, 0]], x[1, [2, 2]]])),
    ("scatter", dict(data=X, indices=i32(2, 0), updates=X[:, :2] * 3, axis=np.int32(1), mode="add"),
     lambda data, **_: data + np.stack([3 * X[:, 1], 0 * X[:, 0], 3 * X[:, 0]], axis=1)),
    ("scatter", dict(data=X, indices=i32(1), updates=-X[:, :1], axis=np.int32(1), mode="update"),
     lambda data, **_: np.concatenate([X[:, :1], -X[:, :1], X[:, 2:]], axis=1)),
    ("scatter_along_axis", dict(data=X, indices=np.zeros((2, 3, 1), dtype=np.int32), updates=f32(2, 3, 1),
                                axis=np.int32(2), mode="update"), MIL),
    ("scatter_nd", dict(data=X, indices=np.array([[0, 1], [1, 2]], dtype=np.int32), updates=X[0, :2], mode="add"),
     lambda data, **_: data + np.stack([np.stack([0 * X[0, 0], X[0, 0], 0 * X[0, 0]]),
                                        np.stack([0 * X[0, 0], 0 * X[0, 0], X[0, 1]])])),
    # --- reductions
    *[(op, dict(x=X, axes=i32(1, -1), keep_dims=keep), MIL)
      for op in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_l1_norm",
                 "reduce_l2_norm", "reduce_sum_square", "reduce_log_sum_exp")
      for keep in (False, True)],
    ("reduce_log_sum", dict(x=POS, axes=i32(0)), MIL),
    ("reduce_mean", dict(x=X), MIL),
    ("reduce_argmax", dict(x=i32(0, 0, 1, 1, 0)[None], axis=np.int32(-1)), MIL),
    ("reduce_argmax", dict(x=X, axis=np.int32(1), keep_dims=True), MIL),
    ("reduce_argmin", dict(x=X, axis=np.int32(0)), MIL),
    # --- linear algebra
    ("linear", dict(x=X, weight=f32(5, 4), bias=f32(5)), MIL),
    ("matmul", dict(x=f32(2, 1, 3, 4), y=f32(3, 5, 4), transpose_y=True),
     lambda x, y, transpose_y: np.matmul(x, np.swapaxes(y, -1, -2))),
    ("matmul", dict(x=f32(4, 3), y=f32(4, 2), transpose_x=True), lambda x, y, transpose_x: x.T @ y),
    ("matmul", dict(x=f32(3), y=f32(2, 3, 4)), lambda x, y: np.matmul(x, y)),
    ("einsum", dict(values=(f32(2, 7, 1, 8), f32(2, 8, 1, 5)), equation="bkhc,bchq->bkhq"),
     lambda values, equation: np.einsum(equation, *values)),
    ("einsum", dict(values=(f32(2, 8, 1, 7), f32(2, 7, 1, 5)), equation="bchk,bkhq->bchq"),
     lambda values, equation: np.einsum(equation, *values)),
    # --- normalisation and softmax
    ("softmax", dict(x=X, axis=np.int32(1)), MIL),
    ("batch_norm", dict(x=IMG, mean=f32(4), variance=f32(4, low=0.5, high=2), gamma=f32(4), beta=f32(4),
                        epsilon=np.float32(1e-3)),
     lambda x, mean, variance, gamma, beta, epsilon:
     (x - mean[:, None, None]) / np.sqrt(variance[:, None, None] + epsilon) * gamma[:, None, None] + beta[:, None, None]),
    ("instance_norm", dict(x=IMG, gamma=f32(4), beta=f32(4), epsilon=np.float32(1e-5)),
     lambda x, gamma, beta, epsilon: F.instance_norm(_t(x), weight=_t(gamma), bias=_t(beta), eps=1e-5).numpy()),
    ("layer_norm", dict(x=X, axes=i32(-1), gamma=f32(4), beta=f32(4), epsilon=np.float32(1e-5)), MIL),
    ("layer_norm", dict(x=f32(2, 6, 1, 5), axes=i32(1), gamma=f32(6), beta=f32(6), epsilon=np.float32(1e-5)), MIL),
    ("l2_norm", dict(x=f32(2, 3, 4, 5)), MIL),
    ("local_response_norm", dict(x=IMG, size=np.int32(3)),
     lambda x, size: F.local_response_norm(_t(x), 3, alpha=1e-4, beta=0.75, k=1.0).numpy()),
    ("reshape_like", dict(x=f32(6, 4), ref_tensors=[f32(2, 3), f32(4, 1)], begins=[np.int32(0)] * 2,
                          ends=[np.int32(2), np.int32(1)], end_masks=[np.bool_(True), np.bool_(False)]),
     lambda x, **_: x.reshape(2, 3, 4)),
    ("scaled_dot_product_attention", dict(query=f32(2, 5, 8), key=f32(2, 7, 8), value=f32(2, 7, 3)), MIL),
    ("scaled_dot_product_attention", dict(query=f32(2, 5, 8), key=f32(2, 7, 8), value=f32(2, 7, 3),
                                          attn_mask=RNG.random((5, 7)) > 0.3), MIL),
    # --- convolution and pooling
    ("conv", dict(x=IMG, weight=f32(3, 4, 3, 3), bias=f32(3), pad_type="custom", pad=i32(1, 1, 1, 1)),
     lambda x, weight, bias, pad_type, pad: F.conv2d(_t(x), _t(weight), _t(bias), padding=1).numpy()),
    ("conv", dict(x=IMG, weight=f32(3, 4, 3, 3), strides=i32(2, 2), pad_type="custom", pad=i32(1, 1, 1, 1)),
     lambda x, weight, strides, pad_type, pad: F.conv2d(_t(x), _t(weight), stride=2, padding=1).numpy()),
    ("conv", dict(x=IMG, weight=f32(4, 2, 2, 2), strides=i32(2, 2), pad_type="same", groups=np.int32(2)),
     lambda x, weight, strides, pad_type, groups: F.conv2d(_t(x), _t(weight), stride=2, groups=2).numpy()),
    ("conv", dict(x=f32(1, 4, 7, 7), weight=f32(2, 4, 2, 2), pad_type="same"),
     lambda x, weight, pad_type: F.conv2d(F.pad(_t(x), (0, 1, 0, 1)), _t(weight)).numpy()),
    ("conv", dict(x=f32(1, 4, 7, 7), weight=f32(2, 4, 2, 2), pad_type="same_lower"),
     lambda x, weight, pad_type: F.conv2d(F.pad(_t(x), (1, 0, 1, 0)), _t(weight)).numpy()),
    ("conv", dict(x=f32(1, 4, 9), weight=f32(2, 4, 3), pad_type="valid", dilations=i32(2)),
     lambda x, weight, pad_type, dilations: F.conv1d(_t(x), _t(weight), dilation=2).numpy()),
    ("conv_transpose", dict(x=IMG, weight=f32(4, 3, 4, 4), bias=f32(3), strides=i32(2, 2), pad_type="custom",
                            pad=i32(1, 1, 1, 1)),
     lambda x, weight, bias, strides, pad_type, pad: F.conv_transpose2d(_t(x), _t(weight), _t(bias), 2, 1).numpy()),
    ("conv_transpose", dict(x=IMG, weight=f32(4, 3, 4, 4), strides=i32(2, 2), pad_type="same"),
     lambda x, weight, strides, pad_type: F.conv_transpose2d(_t(x), _t(weight), stride=2, padding=1).numpy()),
    ("max_pool", dict(x=IMG, kernel_sizes=i32(2, 2), strides=i32(2, 2), pad_type="valid"),
     lambda x, kernel_sizes, strides, pad_type: F.max_pool2d(_t(x), 2).numpy()),
    ("max_pool", dict(x=IMG, kernel_sizes=i32(3, 3), strides=i32(1, 1), pad_type="same"),
     lambda x, kernel_sizes, strides, pad_type: F.max_pool2d(_t(x), 3, 1, 1).numpy()),
    ("avg_pool", dict(x=IMG, kernel_sizes=i32(3, 3), strides=i32(2, 2), pad_type="custom", pad=i32(1, 1, 1, 1),
                      exclude_padding_from_average=True),
     lambda x, kernel_sizes, strides, pad_type, pad, exclude_padding_from_average:
     F.avg_pool2d(_t(x), 3, 2, 1, count_include_pad=False).numpy()),
    ("avg_pool", dict(x=IMG, kernel_sizes=i32(3, 3), strides=i32(2, 2), pad_type="custom", pad=i32(1, 1, 1, 1)),
     lambda x, kernel_sizes, strides, pad_type, pad: F.avg_pool2d(_t(x), 3, 2, 1, count_include_pad=True).numpy()),
    ("l2_pool", dict(x=IMG, kernel_sizes=i32(2, 2), strides=i32(2, 2), pad_type="valid"),
     lambda x, kernel_sizes, strides, pad_type: np.sqrt(F.avg_pool2d(_t(x * x), 2).numpy() * 4)),
    # --- resizing
    ("upsample_nearest_neighbor", dict(x=IMG, scale_factor_height=np.float32(2), scale_factor_width=np.float32(2)),
     lambda x, **_: F.interpolate(_t(x), scale_factor=2.0, mode="nearest").numpy()),
    ("upsample_nearest_neighbor", dict(x=IMG, scale_factor_height=np.float32(1.5), scale_factor_width=np.float32(2.5)),
     lambda x, **_: F.interpolate(_t(x), scale_factor=(1.5, 2.5), mode="nearest").numpy()),
    ("resize_nearest_neighbor", dict(x=IMG, target_size_height=np.int32(9), target_size_width=np.int32(4)),
     lambda x, **_: F.interpolate(_t(x), size=(9, 4), mode="nearest").numpy()),
    ("upsample_bilinear", dict(x=IMG, scale_factor_height=np.float32(2), scale_factor_width=np.float32(2),
                               align_corners=True),
     lambda x, **_: F.interpolate(_t(x), scale_factor=2.0, mode="bilinear", align_corners=True).numpy()),
    ("upsample_bilinear", dict(x=IMG, scale_factor_height=np.float32(2), scale_factor_width=np.float32(2),
                               align_corners=False, half_pixel_centers=True),
     lambda x, **_: F.interpolate(_t(x), scale_factor=2.0, mode="bilinear", align_corners=False).numpy()),
    ("resize_bilinear", dict(x=f32(1, 1, 1, 2), target_size_height=np.int32(1), target_size_width=np.int32(5),
                             sampling_mode="UNALIGN_CORNERS"),
     lambda x, **_: (x[..., :1] + (x[..., 1:] - x[..., :1]) * np.array([0, 0.1, 0.5, 0.9, 1.0], np.float32))),
    ("resize_bilinear", dict(x=f32(1, 1, 1, 2), target_size_height=np.int32(1), target_size_width=np.int32(5),
                             sampling_mode="DEFAULT"),
     lambda x, **_: (x[..., :1] + (x[..., 1:] - x[..., :1]) * np.array([0, 0.4, 0.8, 1.0, 1.0], np.float32))),
    ("resize_bilinear", dict(x=f32(1, 1, 1, 2), target_size_height=np.int32(1), target_size_width=np.int32(5),
                             sampling_mode="OFFSET_CORNERS"),
     lambda x, **_: (x[..., :1] + (x[..., 1:] - x[..., :1]) * np.array([0.1, 0.3, 0.5, 0.7, 0.9], np.float32))),
    ("resize_bilinear", dict(x=IMG, target_size_height=np.int32(11), target_size_width=np.int32(3),
                             sampling_mode="STRICT_ALIGN_CORNERS"),
     lambda x, **_: F.interpolate(_t(x), size=(11, 3), mode="bilinear", align_corners=True).numpy()),
]


def build_op(op_type: str, kwargs: dict, opset: str = "iOS18"):
    """The op as a MIL program holds it (defaults filled in), built from constant inputs.

    Where coremltools' own value inference cannot handle constant inputs, `x` becomes a
    program input instead (those cases carry their own reference).
    """
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    def make(as_input: bool):
        built = []
        spec = mb.TensorSpec(shape=kwargs["x"].shape) if as_input else mb.TensorSpec(shape=(1,))

        @mb.program(input_specs=[spec], opset_version=getattr(ct.target, opset))
        def _prog(first):
            args = {k: ([mb.const(val=v) for v in val] if isinstance(val, list) else val)
                    for k, val in kwargs.items()}
            if as_input:
                args["x"] = first
            built.append(getattr(mb, op_type)(**args))
            return first

        return built[0]

    try:
        out = make(as_input=False)
    except (TypeError, ValueError):
        out = make(as_input=True)
    return (out[0].op if isinstance(out, (list, tuple)) else out.op), out


def run_kernel(op, given: dict) -> list[np.ndarray]:
    """Our kernel on the op's inputs, called and stored the way the interpreter does it.

    Given inputs are passed from fresh copies (coremltools' value inference may modify the
    arrays it holds); defaults come from the op.
    """
    from coremltools.converters.mil.mil import types

    def value(var, raw):
        return to_runtime(copy.deepcopy(raw), types.builtin_to_string(var.dtype))

    kwargs = {}
    for k, vs in op.inputs.items():
        raw = given.get(k, [v.val for v in vs] if isinstance(vs, (list, tuple)) else vs.val)
        kwargs[k] = (tuple(value(v, r) for v, r in zip(vs, raw)) if isinstance(vs, (list, tuple))
                     else value(vs, raw))
    result = KERNELS[op.op_type].fn(**kwargs)
    result = result if isinstance(result, tuple) else (result,)
    # the interpreter stores every result with the op's declared output dtype
    result = [coerce(r, types.builtin_to_string(v.dtype), False) for r, v in zip(result, op.outputs)]
    return [r.numpy() for r in result]


@pytest.mark.parametrize("op_type, kwargs, reference", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_kernel_matches_reference(op_type, kwargs, reference):
    op, out = build_op(op_type, copy.deepcopy(kwargs))
    got = run_kernel(op, kwargs)
    if reference is MIL:
        outs = out if isinstance(out, (list, tuple)) else [out]
        expected = [v.val for v in outs]
        assert all(e is not None for e in expected), f"coremltools has no value inference for {op_type}"
    else:
        expected = reference(**kwargs)
        expected = list(expected) if isinstance(expected, tuple) else [expected]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        e = np.asarray(e)
        assert g.shape == e.shape, f"{op_type}: expected shape {e.shape}, got {g.shape}"
        if e.dtype == np.bool_:
            assert np.array_equal(g.astype(bool), e)
        else:
            np.testing.assert_allclose(g.astype(np.float64), e.astype(np.float64), rtol=2e-5, atol=2e-5)


def test_every_registered_kernel_has_a_case():
    covered = {c[0] for c in CASES}
    constexpr = {k for k, v in KERNELS.items() if v.constexpr}  # tested in test_compression.py
    assert set(KERNELS) - covered - constexpr == set()
