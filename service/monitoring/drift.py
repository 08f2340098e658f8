"""Drift verdicts. Pure functions: numbers in, a verdict out.

Rule (DESIGN.md §7): a window is *drifting* when it has at least ``n_min`` labels and the lower bound of
its ECE confidence interval exceeds the reference's upper bound plus a tolerance. The reference is the
active calibrator's held-out evaluation at fit time. Sample size is respected twice: windows under
``n_min`` get no verdict, and the CI widens as n shrinks, so small noisy windows do not alarm.
Label-free early warning: KS and PSI between recent and reference confidence histograms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Verdict:
    state: str  # ok | drifting | insufficient_labels | no_reference
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"state": self.state, "reason": self.reason}


def reference_from_evaluation(evaluation: dict[str, Any] | None) -> tuple[float, float] | None:
    """(ECE, ECE upper bound) of a calibrator's held-out evaluation, if it has one."""
    if not evaluation:
        return None
    after = evaluation.get("after", evaluation)
    ece = after.get("ece")
    hi = after.get("ece_hi", after.get("ece_ci_hi"))
    if hi is None and isinstance(after.get("ece_ci"), list | tuple):
        hi = after["ece_ci"][1]
    if ece is None:
        return None
    return float(ece), float(hi if hi is not None else ece)


def ci_rule(
    n: float, ece_lo: float, reference: tuple[float, float] | None, *, n_min: int, tolerance: float
) -> Verdict:
    if n < n_min:
        return Verdict("insufficient_labels", f"{int(n)} labels in the window, {n_min} needed for a verdict")
    if reference is None:
        return Verdict("no_reference", "the active calibrator has no held-out evaluation to compare with")
    _, ref_hi = reference
    if ece_lo > ref_hi + tolerance:
        return Verdict("drifting", f"ECE lower bound {ece_lo:.4f} > reference upper bound {ref_hi:.4f}"
                                   f" + tolerance {tolerance:.4f}")
    return Verdict("ok", f"ECE lower bound {ece_lo:.4f} ≤ reference upper bound {ref_hi:.4f} + {tolerance:.4f}")


def sigma_rule(value: float, reference_values: np.ndarray, k: float = 3.0) -> bool:
    """NannyML-style band: drifting when outside mean ± k·std of reference windows (needs ≥ 2)."""
    if reference_values.size < 2:
        return False
    mu, sd = float(reference_values.mean()), float(reference_values.std(ddof=1))
    return abs(value - mu) > k * sd


def ks_statistic(hist_a: np.ndarray, hist_b: np.ndarray) -> float:
    """Two-sample KS statistic from two histograms on the same bins (max CDF gap)."""
    a, b = hist_a / max(hist_a.sum(), 1e-12), hist_b / max(hist_b.sum(), 1e-12)
    return float(np.abs(np.cumsum(a) - np.cumsum(b)).max())


def psi(hist_ref: np.ndarray, hist_cur: np.ndarray, eps: float = 1e-4) -> float:
    """Population stability index Σ (p − q) ln(p / q) over histogram bins (eps-floored)."""
    p = np.maximum(hist_cur / max(hist_cur.sum(), 1e-12), eps)
    q = np.maximum(hist_ref / max(hist_ref.sum(), 1e-12), eps)
    return float(np.sum((p - q) * np.log(p / q)))
