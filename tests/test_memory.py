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
    import numpy as np
    from snapfusion_coreml.memory import release_freed_memory

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096 / 1e6

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


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_freed_heap_chunks_leave_the_process():
    out = subprocess.run([sys.executable, "-c", HOLES], capture_output=True, text=True, check=True).stdout.split()
    held, after = float(out[0]), float(out[1])
    assert held - after > 200  # 256 MB of freed chunks were still resident


def test_reports_whether_it_could_trim():
    assert release_freed_memory() is GLIBC
