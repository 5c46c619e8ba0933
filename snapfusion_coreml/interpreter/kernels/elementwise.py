"""Element-wise kernels: arithmetic, comparisons, logic, activations, casts and selects.

Every kernel broadcasts like numpy (MIL's rule) and works on any shape.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .registry import channel_view, float_of, kernel, scalar, tensor

# --- binary arithmetic -----------------------------------------------------------------------


@kernel("add")
def add(x, y):
    return x + y


@kernel("sub")
def sub(x, y):
    return x - y


@kernel("mul")
def mul(x, y):
    return x * y


@kernel("real_div")
def real_div(x, y):
    return float_of(x) / float_of(y)


@kernel("floor_div")
def floor_div(x, y):
    return torch.div(tensor(x), tensor(y), rounding_mode="floor")


@kernel("mod")
def mod(x, y):
    return torch.remainder(tensor(x), y)  # sign of the divisor, like numpy.mod


@kernel("pow")
def pow_(x, y):
    return torch.pow(float_of(x), float_of(y)) if isinstance(x, torch.Tensor) else float(x) ** float_of(y)


@kernel("maximum", exact=True)
def maximum(x, y):
    x, y = tensor(x), tensor(y)
    return torch.maximum(x, y.to(x.dtype) if not y.is_floating_point() and x.is_floating_point() else y)


@kernel("minimum", exact=True)
def minimum(x, y):
    x, y = tensor(x), tensor(y)
    return torch.minimum(x, y.to(x.dtype) if not y.is_floating_point() and x.is_floating_point() else y)


# --- comparisons and logic (bool outputs) ----------------------------------------------------


_COMPARE_AND_LOGIC = {
    "equal": torch.eq, "not_equal": torch.ne, "greater": torch.gt, "greater_equal": torch.ge,
    "less": torch.lt, "less_equal": torch.le,
}
_LOGIC = {"logical_and": torch.logical_and, "logical_or": torch.logical_or, "logical_xor": torch.logical_xor}


def _compare(fn):
    def run(x, y):
        return fn(tensor(x), y)
    return run


def _logic(fn):
    def run(x, y):
        return fn(tensor(x), tensor(y))
    return run


for _name, _fn in _COMPARE_AND_LOGIC.items():
    kernel(_name)(_compare(_fn))
for _name, _fn in _LOGIC.items():
    kernel(_name)(_logic(_fn))


@kernel("logical_not")
def logical_not(x):
    return torch.logical_not(tensor(x))


# --- unary math --------------------------------------------------------------------------------

_UNARY = {
    "abs": torch.abs, "acos": torch.acos, "asin": torch.asin, "atan": torch.atan,
    "atanh": torch.atanh, "ceil": torch.ceil, "cos": torch.cos, "cosh": torch.cosh,
    "erf": torch.erf, "exp": torch.exp, "exp2": torch.exp2, "floor": torch.floor,
    "round": torch.round, "sign": torch.sign, "sin": torch.sin, "sinh": torch.sinh,
    "sqrt": torch.sqrt, "square": torch.square, "tan": torch.tan, "tanh": torch.tanh,
    "relu": torch.relu, "sigmoid": torch.sigmoid, "silu": F.silu, "softplus": F.softplus,
    "softsign": F.softsign,
}


def _unary(fn):
    def run(x):
        return fn(float_of(tensor(x)))

    return run


for _name, _fn in _UNARY.items():
    kernel(_name, exact=_name in ("abs", "ceil", "floor", "relu", "sign"))(_unary(_fn))


@kernel("rsqrt")
def rsqrt(x, epsilon=1e-12):
    return torch.rsqrt(x + epsilon)


@kernel("inverse")
def inverse(x, epsilon=1e-4):
    return 1.0 / (x + epsilon)


@kernel("log")
def log(x, epsilon=0.0):
    return torch.log(x + epsilon)


@kernel("relu6")
def relu6(x):
    return torch.clamp(x, 0.0, 6.0)


@kernel("gelu")
def gelu(x, mode="EXACT"):
    if mode == "EXACT":
        return F.gelu(x)
    if mode == "TANH_APPROXIMATION":
        return F.gelu(x, approximate="tanh")
    if mode == "SIGMOID_APPROXIMATION":
        return x * torch.sigmoid(1.702 * x)
    raise ValueError(f"expected gelu mode EXACT, TANH_APPROXIMATION or SIGMOID_APPROXIMATION, got {mode}")


# --- parametric activations ---------------------------------------------------------------------


@kernel("clip", exact=True)
def clip(x, alpha, beta):
    return torch.clamp(x, min=tensor(alpha, x), max=tensor(beta, x))


@kernel("threshold", exact=True)
def threshold(x, alpha):
    return torch.clamp(x, min=tensor(alpha, x))


@kernel("thresholded_relu")
def thresholded_relu(x, alpha):
    return torch.where(x > alpha, x, torch.zeros_like(x))


@kernel("leaky_relu")
def leaky_relu(x, alpha):
    return torch.where(x >= 0, x, x * alpha)


@kernel("elu")
def elu(x, alpha):
    return torch.where(x > 0, x, alpha * torch.expm1(x))


@kernel("clamped_relu")
def clamped_relu(x, alpha, beta):
    return torch.clamp(torch.where(x >= 0, x, x * alpha), max=scalar(beta))


@kernel("linear_activation")
def linear_activation(x, alpha, beta):
    return x * alpha + beta


@kernel("scaled_tanh")
def scaled_tanh(x, alpha, beta):
    return alpha * torch.tanh(beta * x)


@kernel("sigmoid_hard")
def sigmoid_hard(x, alpha, beta):
    return torch.clamp(alpha * x + beta, 0.0, 1.0)


@kernel("prelu")
def prelu(x, alpha):
    """x (B, C, ...), alpha (C,)."""
    return torch.where(x >= 0, x, x * channel_view(tensor(alpha), x.dim()))


@kernel("softplus_parametric")
def softplus_parametric(x, alpha, beta):
    """x ([B,] C, H, W), alpha and beta (C,): alpha * log(1 + exp(beta * x)) per channel."""
    ch = x.dim() - 3
    return channel_view(alpha, x.dim(), ch) * F.softplus(channel_view(beta, x.dim(), ch) * x)


# --- casts and selection ----------------------------------------------------------------------------


@kernel("cast")
def cast(x, dtype):
    # The interpreter converts every result to the dtype the program declares for it (float
    # rounding, integer wrapping, bool), which for `cast` is exactly `dtype`.
    return tensor(x)


@kernel("identity", exact=True)
def identity(x):
    return tensor(x)


@kernel("select", exact=True)
def select(cond, a, b):
    a, b = tensor(a), tensor(b)
    if a.dtype != b.dtype:
        dtype = torch.promote_types(a.dtype, b.dtype)
        a, b = a.to(dtype), b.to(dtype)
    return torch.where(tensor(cond).to(torch.bool), a, b)

