"""kmeans_1d sums each cluster as one run of the sorted distinct values: the palettes equal, to the
bit, those of the textbook step (assign every value to its nearest centroid, sum each cluster with
np.bincount), which palettes converted before were made with."""

from __future__ import annotations

import numpy as np
import pytest

from snapfusion_coreml.convert import kmeans
from snapfusion_coreml.convert.kmeans import kmeans_1d


def _sums_by_assignment(x: np.ndarray, runs: tuple[np.ndarray, np.ndarray], centroids: np.ndarray):
    """kmeans._cluster_sums the textbook way: every value assigned, each cluster summed by bincount."""
    w, k = runs[0][:-1], len(centroids)
    assign = np.searchsorted((centroids[:-1] + centroids[1:]) / 2, x)
    return np.bincount(assign, weights=w, minlength=k), np.bincount(assign, weights=w * x, minlength=k)


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
def test_palettes_equal_the_assignment_form_to_the_bit(bits, monkeypatch):
    ours = [kmeans_1d(values, bits) for values in _weights()]
    monkeypatch.setattr(kmeans, "_cluster_sums", _sums_by_assignment)
    for (lut, indices), values in zip(ours, _weights()):
        want_lut, want_indices = kmeans_1d(values, bits)
        assert lut.tobytes() == want_lut.tobytes(), (bits, values.size)
        assert np.array_equal(indices, want_indices), (bits, values.size)
