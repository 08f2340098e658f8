"""Selective prediction: the risk–coverage curve and the area under the accuracy–rejection curve (AUARC).

Rows are ranked by calibrated confidence; accepting the top i rows has accuracy A_i = (1/i) Σ_{j≤i} correct_j,
and AUARC = (1/N) Σ_{i=1..N} A_i (El-Yaniv & Wiener 2010; Nadeem, Zucker & Hanczar 2009). Rows with equal
confidence (or in the same confidence bin) cannot be ordered, so within such a group we take the expectation
over its orderings: the same function serves raw rows and the O(bins) monitoring state.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import CalibrationInputError, FloatArray
from service.calibration.lazy_special import special  # scipy.special on first use


def grouped_auarc(counts: ArrayLike, correct: ArrayLike) -> float:
    """AUARC from groups ordered by confidence **descending**: ``counts`` (G,) rows, ``correct`` (G,) Σ correct.

    Inside a group of g rows with c correct, placed after N rows holding C correct, the expected cumulative
    count at rank N + j is C + j·c/g, so the group adds Σ_j (C + j·a)/(N + j) = (C − N·a)(H_{N+g} − H_N) + c with
    a = c/g and H the harmonic numbers (H_m − H_N = ψ(m + 1) − ψ(N + 1)).
    """
    n = np.asarray(counts, dtype=np.float64)
    c = np.asarray(correct, dtype=np.float64)
    keep = n > 0
    n, c = n[keep], c[keep]
    total = n.sum()
    if total <= 0:
        raise CalibrationInputError("AUARC needs at least one row")
    before_n = np.cumsum(n) - n
    before_c = np.cumsum(c) - c
    a = c / n
    harmonic = special().digamma(before_n + n + 1.0) - special().digamma(before_n + 1.0)
    return float(((before_c - before_n * a) * harmonic + c).sum() / total)


def _groups_by_confidence(confidence: ArrayLike, correct: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.ndim != 1 or conf.shape != hit.shape or conf.size == 0 or not np.isfinite(conf).all():
        raise CalibrationInputError("confidence and correct must be finite 1-D arrays of the same non-zero length")
    values, inverse = np.unique(-conf, return_inverse=True)  # ascending in −confidence = descending confidence
    counts = np.bincount(inverse).astype(np.float64)
    hits: FloatArray = np.bincount(inverse, weights=hit).astype(np.float64)
    return -values, counts, hits


def auarc(confidence: ArrayLike, correct: ArrayLike) -> float:
    """AUARC of rows (n,) with their top-label confidence and 1[prediction correct]; ties in expectation."""
    _, n, c = _groups_by_confidence(confidence, correct)
    return grouped_auarc(n, c)


def risk_coverage(confidence: ArrayLike, correct: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(thresholds, coverage, risk), each (G,) over the distinct confidences τ descending: accepting the rows
    with confidence ≥ τ keeps the fraction ``coverage`` of them, with error rate ``risk`` among the accepted."""
    values, n, c = _groups_by_confidence(confidence, correct)
    accepted, hits = np.cumsum(n), np.cumsum(c)
    return values, accepted / accepted[-1], 1.0 - hits / accepted
