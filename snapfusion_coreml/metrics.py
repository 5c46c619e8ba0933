"""The one correctness helper: PSNR against a reference, shared by tests, `verify` and `convert`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_PSNR_DB = 35.0  # Apple's bar for a converted model against its PyTorch reference
PARITY_PSNR_DB = 60.0  # fp32 re-implementation against the original implementation


@dataclass(frozen=True)
class Comparison:
    psnr_db: float  # inf when identical
    max_abs_error: float
    non_finite: int  # NaN/inf count in the candidate

    def ok(self, min_psnr: float = MIN_PSNR_DB) -> bool:
        return self.non_finite == 0 and self.psnr_db >= min_psnr


def psnr(reference, candidate) -> float:
    """PSNR in dB with the reference's peak (max |x|) as signal: 20 log10(peak / rmse).

    A non-finite candidate scores -inf; identical arrays score +inf.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        raise ValueError(f"expected shape {ref.shape}, got {cand.shape}")
    if not np.all(np.isfinite(cand)):
        return float("-inf")
    mse = float(np.mean((ref - cand) ** 2))
    if mse == 0.0:
        return float("inf")
    peak = float(np.max(np.abs(ref))) or 1.0
    return 20.0 * np.log10(peak / np.sqrt(mse))


def compare(reference, candidate) -> Comparison:
    """PSNR, max abs error (over finite entries) and the non-finite count of `candidate`."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    finite = np.isfinite(cand)
    err = np.abs(ref - np.where(finite, cand, 0.0))[finite]
    return Comparison(psnr(ref, cand), float(err.max()) if err.size else 0.0, int((~finite).sum()))
