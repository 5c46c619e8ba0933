"""Fast, exact 1-D k-means for weight palettization.

coremltools' "kmeans" mode runs scikit-learn's k-means on every element of a weight: about a
minute for one 1280x1280x3x3 conv on 2 cores, most of an hour for an SD UNet. Weights are fp16
after conversion, so a tensor holds at most 65,536 distinct values: Lloyd's algorithm on those
values weighted by their counts optimises the same objective (sum of squared errors over all
elements) in milliseconds. Initialisation is at weighted quantiles, so results are deterministic.
"""

from __future__ import annotations

from functools import partial

import numpy as np

MAX_ITERATIONS = 1000


def kmeans_1d(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(lut (2**bits,), indices like values.flatten()) minimising the squared quantisation error."""
    k = 1 << bits
    flat = values.reshape(-1)
    uniq, inverse, counts = _distinct(flat)
    if len(uniq) <= k:  # every value fits in the palette exactly
        lut = np.zeros(k, dtype=values.dtype)
        lut[: len(uniq)] = uniq
        return lut, inverse.astype(np.uint8 if bits <= 8 else np.uint16)
    x, w = uniq.astype(np.float64), counts.astype(np.float64)
    cum = np.cumsum(w)
    centroids = x[np.searchsorted(cum, (np.arange(k) + 0.5) / k * cum[-1])]
    runs = np.append(w, 0.0), np.append(w * x, 0.0)  # a last run may start at len(x): padded by a 0
    for _ in range(MAX_ITERATIONS):
        total, sums = _cluster_sums(x, runs, centroids)
        updated = np.sort(np.where(total > 0, sums / np.maximum(total, 1e-300), centroids))
        if np.allclose(updated, centroids, rtol=0, atol=1e-12):
            break
        centroids = updated
    assign = np.searchsorted((centroids[:-1] + centroids[1:]) / 2, x)
    return centroids.astype(values.dtype), assign[inverse].astype(np.uint8)


def _cluster_sums(x: np.ndarray, runs: tuple[np.ndarray, np.ndarray], centroids: np.ndarray) -> tuple[np.ndarray, ...]:
    """(weight, weighted sum of x) of each centroid's cluster, from runs = (w, w * x) padded by a
    zero. x is sorted, and the nearest centroid of x[i] is the number of midpoints below it, so
    cluster j is one run x[starts[j]:starts[j+1]]. Each run is summed left to right from 0
    (np.add.reduceat), the order in which np.bincount adds the elements of a bin, so the palettes
    are those of per-element assignment and bincount to the bit (tests/convert/test_kmeans.py),
    in a third of the time: no per-element search, no scatter."""
    starts = np.concatenate(([0], np.searchsorted(x, (centroids[:-1] + centroids[1:]) / 2, side="right")))
    empty = np.diff(np.append(starts, len(x))) == 0
    return tuple(np.where(empty, 0.0, np.add.reduceat(values, starts)) for values in runs)


def _distinct(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """np.unique(flat, return_inverse=True, return_counts=True), in O(n) for fp16 via bit codes."""
    if flat.dtype != np.float16:
        return np.unique(flat, return_inverse=True, return_counts=True)
    codes = flat.view(np.uint16)
    counts = np.bincount(codes, minlength=1 << 16)
    present = np.flatnonzero(counts).astype(np.uint16)
    values = present.view(np.float16)
    order = np.argsort(values, kind="stable")
    rank = np.zeros(1 << 16, dtype=np.int64)
    rank[present[order]] = np.arange(len(order))
    return values[order], rank[codes], counts[present[order]]


def kmeans_lut_function(bits: int):
    """A coremltools `lut_function` (mode="custom") palettizing to `bits` with kmeans_1d."""
    return partial(kmeans_1d, bits=bits)
