"""Handing freed heap memory back to the operating system between conversion steps.

Tracing a full-size UNet runs one forward pass at the export shape; its activations (tens of MB
each) are allocated from glibc's heap and, once freed, stay mapped in the process: about 1 GB of
resident memory that no object uses, held through the rest of the conversion
(benchmarks/results/convert_memory.md). glibc's malloc_trim(0) returns it. Elsewhere (macOS,
musl) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system; True when the C library could do it."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
