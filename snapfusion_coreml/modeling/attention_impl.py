"""The attention implementations by name (attention.py holds the functions).

Kept free of torch so the command line can offer the choices without importing it.
"""

from __future__ import annotations

import enum


class AttentionImpl(str, enum.Enum):
    ORIGINAL = "original"
    SPLIT_EINSUM = "split_einsum"
    SPLIT_EINSUM_V2 = "split_einsum_v2"
