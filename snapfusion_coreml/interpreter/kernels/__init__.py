"""CPU kernels of the Core ML program interpreter, one per MIL op type (see registry.py)."""

from . import compression, elementwise, nn, reduce, tensor  # noqa: F401  (register kernels)
from .registry import KERNELS, Kernel

__all__ = ["KERNELS", "Kernel"]
