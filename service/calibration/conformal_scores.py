"""Split conformal classification, the pure part: non-conformity scores, the finite-sample quantile, the sets.

Probabilities are the *calibrated* ones (n, K); labels are class indices (n,). References: Vovk, Gammerman &
Shafer 2005; Angelopoulos & Bates 2021 ("A gentle introduction to conformal prediction"); LAC: Sadinle, Lei &
Wasserman 2019; APS: Romano, Sesia & Candès 2020. Checked against MAPIE 1.6 in
tests/calibration/test_conformal_scores.py.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from service.calibration.base import CalibrationInputError, FloatArray, IntArray

Score = Literal["lac", "aps"]
SCORES: tuple[Score, ...] = ("lac", "aps")
# Set membership allows this slack: served probabilities come from float32 logits through a calibrator, so a
# label whose score equals the quantile up to rounding must stay in the set (MAPIE uses the same 1e-8).
SET_TOLERANCE = 1e-8


def mass_above(probs: FloatArray) -> FloatArray:
    """m[i, k] = Σ_{j : p_ij > p_ik} p_ij, shape (n, K): the probability mass ranked strictly above class k.

    Tied classes share the mass above their tie group, so the score does not depend on class order.
    One sort per row (O(nK log K)), not an (n, K, K) comparison, so it stays cheap for large K.
    """
    order = np.argsort(-probs, axis=1, kind="stable")
    p_sorted = np.take_along_axis(probs, order, axis=1)
    before = np.cumsum(p_sorted, axis=1) - p_sorted  # mass strictly before each sorted position
    k = probs.shape[1]
    # the first sorted position of each tie group: positions whose value differs from their left neighbour
    new_group = np.ones(p_sorted.shape, dtype=bool)
    new_group[:, 1:] = p_sorted[:, 1:] != p_sorted[:, :-1]
    first = np.maximum.accumulate(np.where(new_group, np.arange(k), 0), axis=1)
    m_sorted = np.take_along_axis(before, first, axis=1)
    out = np.empty_like(probs)
    np.put_along_axis(out, order, m_sorted, axis=1)
    return out


def lac_scores(probs: FloatArray, labels: IntArray) -> FloatArray:
    """LAC score of the true label, s_i = 1 − p̂_{y_i}(x_i), shape (n,)."""
    p_true: FloatArray = np.take_along_axis(probs, labels[:, None], axis=1)[:, 0]
    return 1.0 - p_true


def aps_scores(probs: FloatArray, labels: IntArray, u: FloatArray | None = None) -> FloatArray:
    """APS score of the true label, s_i = Σ_{j : p̂_j > p̂_y} p̂_j + u_i·p̂_y, shape (n,).

    ``u`` (n,) in [0, 1] randomises the score (u ~ U(0, 1) gives exact coverage); ``None`` means u = 1, the
    non-randomised cumulative mass up to and including the true label.
    """
    p_true = np.take_along_axis(probs, labels[:, None], axis=1)[:, 0]
    above = np.take_along_axis(mass_above(probs), labels[:, None], axis=1)[:, 0]
    weight = 1.0 if u is None else u
    out: FloatArray = above + weight * p_true
    return out


def true_label_scores(probs: FloatArray, labels: IntArray, score: Score, u: FloatArray | None = None) -> FloatArray:
    """The calibration scores of ``score`` ("lac" or "aps"; ``u`` only applies to APS)."""
    return lac_scores(probs, labels) if score == "lac" else aps_scores(probs, labels, u)


def conformal_rank(n: int, coverage: float) -> int:
    """k = ⌈(n + 1)·(1 − α)⌉ with 1 − α = ``coverage``: q̂ is the k-th smallest of n calibration scores.

    The product is rounded to 9 decimals first: 0.9 is stored as 0.90000000000000002, and (99 + 1)·0.9 must
    give rank 90, not 91 (a set one step more conservative than the formula asks for).
    """
    return math.ceil(round((n + 1) * coverage, 9))


def conformal_quantile(sorted_scores: FloatArray, coverage: float) -> float:
    """q̂ = the ⌈(n+1)(1−α)⌉-th smallest score (``sorted_scores`` ascending), or +∞ when that rank exceeds n
    (too few calibration rows for this coverage: the set is then every class)."""
    k = conformal_rank(sorted_scores.shape[0], coverage)
    return float(sorted_scores[k - 1]) if k <= sorted_scores.shape[0] else math.inf


def prediction_sets(probs: FloatArray, thresholds: FloatArray, score: Score) -> np.ndarray:
    """Boolean membership (n, K): class k is in C(x) when its score is within ``thresholds[k]`` (shape (K,);
    one value repeated for a marginal set, q̂_k per class for Mondrian).

    LAC: 1 − p̂_k ≤ q̂_k. May be empty (no class is plausible at this coverage); we return it empty rather
    than fall back to the top label, which keeps the guarantee exact and tells the client the row is unusual.
    APS: the classes ranked above k hold mass < q̂_k — the deterministic set of Romano et al. that adds classes
    by decreasing p̂ up to and including the one whose cumulative mass reaches q̂ (MAPIE's
    ``include_last_label=True``); it contains every randomised APS set, so coverage ≥ 1 − α still holds.
    """
    if score == "lac":
        member: np.ndarray = (1.0 - probs) - thresholds[None, :] <= SET_TOLERANCE
        return member
    above = mass_above(probs)
    member = (above < thresholds[None, :] - SET_TOLERANCE) | (above == 0.0)
    return member


def check_coverage(coverage: float) -> float:
    """``coverage`` (1 − α) as a float strictly inside (0, 1)."""
    if not isinstance(coverage, int | float) or isinstance(coverage, bool) or not 0.0 < float(coverage) < 1.0:
        raise CalibrationInputError(f"coverage must be a number strictly between 0 and 1; got {coverage!r}")
    return float(coverage)


def check_score(score: object) -> Score:
    if score not in SCORES:
        raise CalibrationInputError(f"unknown conformal score {score!r}; choose one of {', '.join(SCORES)}")
    return score
