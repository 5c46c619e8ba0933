"""Tamper with a Core ML package's weight.bin the way a bad copy or a broken tool would."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Callable

import numpy as np


def rewrite_largest_fp16_blob(weight_bin: Path, transform: Callable[[np.ndarray], np.ndarray]) -> None:
    """Apply `transform` to the raw uint16 values of the largest fp16 blob, in place.

    Blob storage: 64-byte metadata headers starting with the 0xDEADBEEF sentinel, then dtype
    (1 = fp16), size and data offset.
    """
    data = bytearray(Path(weight_bin).read_bytes())
    blobs = []
    for pos in range(64, len(data) - 64, 64):
        sentinel, dtype, size, offset = struct.unpack_from("<IIQQ", data, pos)
        if sentinel == 0xDEADBEEF and dtype == 1:
            blobs.append((size, offset))
    size, offset = max(blobs)
    values = np.frombuffer(bytes(data[offset : offset + size]), dtype=np.uint16)
    data[offset : offset + size] = transform(values).astype(np.uint16).tobytes()
    Path(weight_bin).write_bytes(bytes(data))
