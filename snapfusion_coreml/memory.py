"""Handing freed heap memory back to the operating system during a conversion.

Tracing a full-size UNet runs one forward pass at the export shape; its activations (tens of MB
each) come from glibc's heap once glibc has raised its mmap threshold (it does after the first
large free, up to 32 MB) and, once freed, stay mapped in the process: about 1 GB of resident
memory that no object uses, held through the rest of the conversion
(benchmarks/results/convert_memory.md). Two glibc calls avoid it: mallopt(M_MMAP_THRESHOLD) pins
the threshold, so every large array gets its own mapping and leaves with its last reference, and
malloc_trim(0) returns what the heap still holds. Elsewhere (macOS, musl) both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from contextlib import contextmanager
from typing import Callable, Iterator

M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h


@functools.lru_cache(maxsize=None)
def _glibc(function: str):
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return getattr(ctypes.CDLL(name), function)
    except (OSError, AttributeError):  # not glibc
        return None


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system; True when the C library could do it."""
    trim = _glibc("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


def unmap_large_allocations(threshold_bytes: int = 1 << 20) -> bool:
    """From now on, in this process, give every allocation of `threshold_bytes` or more its own
    mapping, unmapped when freed. A process-wide setting: `convert` makes it for its own process;
    a library caller decides for theirs. True when the C library could do it."""
    mallopt = _glibc("mallopt")
    return mallopt is not None and bool(mallopt(M_MMAP_THRESHOLD, threshold_bytes))


@contextmanager
def collections_of_new_objects_only() -> Iterator[Callable[[], None]]:
    """Within the block, the cyclic garbage collector leaves alone the objects that survived the
    last `settle()` (which the block yields): settle() collects cycles, then sets the survivors
    aside until the block ends.

    A conversion collects its cycles once per component (a converted program is a graph of ops
    and variables that refer to each other), and coremltools does once per ct.convert. A full
    collection walks every object of the process, torch's, coremltools' and transformers' included:
    about 0.4 s each for the bundled default. What survives a component (modules, the opened model,
    results) outlives the conversion anyway; it is collected normally again after the block."""

    def settle() -> None:
        gc.collect()
        gc.freeze()

    settle()
    try:
        yield settle
    finally:
        gc.unfreeze()
