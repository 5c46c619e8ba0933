"""kmeans_1d: Lloyd's algorithm on distinct fp16 values, summed run by run, gives the palettes of
the textbook form (assign every value, then np.bincount) to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from snapfusion_coreml.convert.kmeans import MAX_ITERATIONS, _distinct, kmeans_1d


def kmeans_by_assignment(values: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """The textbook iteration: each distinct value assigned to its nearest centroid, clusters
    summed with np.bincount. Palettes converted with it are the ones earlier versions wrote."""
    k = 1 << bits
    uniq, inverse, counts = _distinct(values.reshape(-1))
    if len(uniq) <= k:
        lut = np.zeros(k, dtype=values.dtype)
        lut[: len(uniq)] = uniq
        return lut, inverse.astype(np.uint8)
    x, w = uniq.astype(np.float64), counts.astype(np.float64)
    cum = np.cumsum(w)
    centroids = x[np.searchsorted(cum, (np.arange(k) + 0.5) / k * cum[-1])]
    for _ in range(MAX_ITERATIONS):
        assign = np.searchsorted((centroids[:-1] + centroids[1:]) / 2, x)
        total = np.bincount(assign, weights=w, minlength=k)
        sums = np.bincount(assign, weights=w * x, minlength=k)
        updated = np.sort(np.where(total > 0, sums / np.maximum(total, 1e-300), centroids))
        if np.allclose(updated, centroids, rtol=0, atol=1e-12):
            break
        centroids = updated
    assign = np.searchsorted((centroids[:-1] + centroids[1:]) / 2, x)
    return centroids.astype(values.dtype), assign[inverse].astype(np.uint8)


def _weights() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    cases = []
    for n in (300, 20_000, 300_000):
        for scale in (0.02, 1.0):
            cases += [rng.standard_normal(n) * scale, rng.uniform(-scale, scale, n), rng.standard_t(3, n) * scale]
    skewed = np.concatenate([np.zeros(5000), rng.standard_normal(50) * 1e-3, [60000.0, -60000.0, 3.0]])
    cases += [skewed, np.repeat(np.arange(70.0), 3), np.array([0.0] * 5 + [1.0] * 3 + [10.0, 10.5, 11.0] * 2)]
    return [c.astype(np.float16) for c in cases]


@pytest.mark.parametrize("bits", [1, 2, 4, 6, 8])
def test_palettes_equal_the_assignment_form_to_the_bit(bits):
    for values in _weights():
        lut, indices = kmeans_1d(values, bits)
        want_lut, want_indices = kmeans_by_assignment(values, bits)
        assert lut.tobytes() == want_lut.tobytes(), (bits, values.size)
        assert np.array_equal(indices, want_indices), (bits, values.size)
