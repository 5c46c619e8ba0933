"""release_freed_memory: heap pages freed by Python but kept by glibc go back to the system."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

from snapfusion_coreml.memory import release_freed_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# In a fresh interpreter: a freed 4 MB chunk raises glibc's mmap threshold, so the next 64 chunks of
# 4 MB come from the heap; small arrays pinned between them keep the heap from shrinking on free.
HOLES = textwrap.dedent("""
    import sys

    import numpy as np
    from snapfusion_coreml.memory import release_freed_memory, unmap_large_allocations

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 1e6

    if sys.argv[1] == "unmapped":
        unmap_large_allocations()
    first = np.ones(4 << 20, dtype=np.uint8)
    del first
    chunks, pins = [], []
    for _ in range(64):
        chunks.append(np.ones(4 << 20, dtype=np.uint8))
        pins.append(np.ones(1 << 10, dtype=np.uint8))
    del chunks
    held = rss_mb()
    release_freed_memory()
    print(held, rss_mb())
""")


def _freed_chunks(mode: str) -> tuple[float, float]:
    """(resident MB after freeing the chunks, resident MB after release_freed_memory)."""
    out = subprocess.run([sys.executable, "-c", HOLES, mode], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_freed_heap_chunks_leave_the_process():
    held, after = _freed_chunks("default")
    assert held - after > 200  # 256 MB of freed chunks were still resident until trimmed


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_large_allocations_leave_with_their_last_reference():
    default, _ = _freed_chunks("default")
    unmapped, _ = _freed_chunks("unmapped")
    assert default - unmapped > 200  # never held: each chunk had its own mapping


def test_reports_whether_it_could_trim():
    assert release_freed_memory() is GLIBC


def test_settled_objects_are_set_aside_until_the_block_ends():
    import gc
    import weakref

    from snapfusion_coreml.memory import collections_of_new_objects_only

    class Node:
        pass

    with collections_of_new_objects_only() as settle:
        assert gc.get_freeze_count() > 0
        garbage = Node()
        garbage.self = garbage  # a cycle only the collector frees
        gone = weakref.ref(garbage)
        del garbage
        settle()
        assert gone() is None
    assert gc.get_freeze_count() == 0
