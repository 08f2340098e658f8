"""Drift verdicts from labelled windows. Pure functions: numbers in, a verdict out (DESIGN.md §7).

Two rules, selectable per query (``rule=ci|sigma``), both gated on ``n_min`` labels:

- ``ci``: drifting when the window's lower 95% confidence bound on ECE exceeds the reference's upper 95%
  bound plus a tolerance. The bounds widen as n shrinks, so small noisy windows do not alarm.
- ``sigma``: NannyML's ``StandardDeviationThreshold`` — drifting when the window's ECE lies above
  mean + k·σ of the ECEs of the reference windows (one-sided: a *lower* ECE is never a problem).

And the calibration-in-the-large check: the gap between expected accuracy (mean calibrated confidence)
and realised accuracy, as a z-score against the reference gap (anchors.md §D.7: that gap *is*
calibration drift in accuracy units).

``cs``: the anytime-valid version of that check — a confidence sequence for the gap over every label since
activation (``calibration.sequential``), whose false-alarm probability holds under continuous checking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.calibration import sequential

MIN_REFERENCE_WINDOWS = 3  # σ from fewer windows is itself noise (NannyML warns below 6)
# The CI rule compares one-sided 95% bounds: the window's 5% bootstrap quantile against the reference's 95%
# quantile (a two-sided interval with alpha = 0.10). Requiring two such bounds not to overlap is already a
# test at a much smaller level (bench/drift_simulation.py: no false alarm in 2,000 calm windows).
DRIFT_ALPHA = 0.10


@dataclass(frozen=True)
class Verdict:
    state: str  # ok | drifting | insufficient_labels | no_reference
    reason: str
    rule: str = "ci"
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason, "rule": self.rule, **self.detail}


@dataclass(frozen=True)
class EvaluationReference:
    """The calibrator's held-out evaluation at fit time: ECE with its CI, accuracy, confidence, n."""

    ece: float
    ece_hi: float
    accuracy: float | None
    mean_confidence: float | None
    n: float | None


def reference_from_evaluation(evaluation: dict[str, Any] | None) -> EvaluationReference | None:
    """Read a calibrator's ``evaluation`` JSON (``{"after": {...}}`` from ``fit_report``, or flat)."""
    if not evaluation:
        return None
    after = evaluation.get("after", evaluation)
    if not isinstance(after, dict) or after.get("ece") is None:
        return None
    hi = after.get("ece_hi", after.get("ece_ci_hi"))
    if hi is None and isinstance(after.get("ece_ci"), list | tuple):
        hi = after["ece_ci"][1]

    def opt(key: str) -> float | None:
        return None if after.get(key) is None else float(after[key])

    return EvaluationReference(float(after["ece"]), float(hi if hi is not None else after["ece"]),
                               opt("accuracy"), opt("mean_confidence"), opt("n"))


def _too_few(n: float, n_min: int, rule: str) -> Verdict | None:
    if n < n_min:
        return Verdict("insufficient_labels", f"{int(n)} labels in the window, {n_min} needed for a verdict", rule)
    return None


def ci_rule(
    n: float, ece_lo: float, reference_hi: float | None, *, n_min: int, tolerance: float, source: str = "reference"
) -> Verdict:
    """Drifting when n ≥ n_min and ECE lower bound > reference upper bound + tolerance."""
    if (v := _too_few(n, n_min, "ci")) is not None:
        return v
    if reference_hi is None:
        return Verdict("no_reference", "no reference: the calibrator has no held-out evaluation and no "
                                       "completed reference windows", "ci")
    detail = {"ece_lo": ece_lo, "threshold": reference_hi + tolerance, "source": source}
    if ece_lo > reference_hi + tolerance:
        return Verdict("drifting", f"ECE lower bound {ece_lo:.4f} > {source} upper bound {reference_hi:.4f}"
                                   f" + tolerance {tolerance:.4f}", "ci", detail)
    return Verdict("ok", f"ECE lower bound {ece_lo:.4f} ≤ {source} upper bound {reference_hi:.4f}"
                         f" + tolerance {tolerance:.4f}", "ci", detail)


def sigma_band(reference_values: np.ndarray, k: float = 3.0) -> tuple[float, float, float]:
    """(mean, sample σ, mean + k·σ) of the reference windows' values."""
    values = np.asarray(reference_values, dtype=np.float64)
    mu, sd = float(values.mean()), float(values.std(ddof=1))
    return mu, sd, mu + k * sd


def sigma_rule(
    n: float, ece: float, reference_values: np.ndarray, *, n_min: int, k: float = 3.0,
    min_windows: int = MIN_REFERENCE_WINDOWS,
) -> Verdict:
    """NannyML-style band over reference windows: drifting when ECE > mean + k·σ (one-sided)."""
    if (v := _too_few(n, n_min, "sigma")) is not None:
        return v
    values = np.asarray(reference_values, dtype=np.float64)
    if values.size < min_windows:
        return Verdict("no_reference", f"{values.size} completed reference windows with ≥ {n_min} labels, "
                                       f"{min_windows} needed for a mean ± {k:g}σ band", "sigma")
    mu, sd, upper = sigma_band(values, k)
    detail = {"reference_mean": mu, "reference_sd": sd, "threshold": upper, "reference_windows": int(values.size)}
    if ece > upper:
        return Verdict("drifting", f"ECE {ece:.4f} > reference mean {mu:.4f} + {k:g}σ ({upper:.4f})", "sigma",
                       detail)
    return Verdict("ok", f"ECE {ece:.4f} ≤ reference mean {mu:.4f} + {k:g}σ ({upper:.4f})", "sigma", detail)


def gap_and_se(count: np.ndarray, confidence_sum: np.ndarray, correct_sum: np.ndarray) -> tuple[float, float]:
    """(mean confidence − accuracy, its standard error) from per-bin sums (positive = overconfident).

    If the window were calibrated within each micro-bin, correct_i ~ Bernoulli(c_i), so
    Var(Σ correct − Σ c) = Σ c_i(1 − c_i) ≈ Σ_m n_m c̄_m(1 − c̄_m) (bin means: slightly conservative)."""
    n = float(count.sum())
    if n <= 0:
        return float("nan"), float("nan")
    full = count > 0
    mean = np.where(full, confidence_sum / np.where(full, count, 1.0), 0.0)
    var = float((count * mean * (1.0 - mean)).sum())
    return float(confidence_sum.sum() - correct_sum.sum()) / n, math.sqrt(max(var, 0.0)) / n


def gap_rule(
    n: float, gap: float, se: float, reference: tuple[float, float] | None, *, n_min: int, z_max: float = 3.0
) -> Verdict:
    """Drifting when |gap − reference gap| > z_max standard errors (both windows' errors combined)."""
    if (v := _too_few(n, n_min, "gap")) is not None:
        return v
    if reference is None:
        return Verdict("no_reference", "no reference gap (mean confidence − accuracy) to compare with", "gap")
    ref_gap, ref_se = reference
    z = (gap - ref_gap) / max(math.hypot(se, ref_se), 1e-12)
    detail = {"z": z, "reference_gap": ref_gap}
    state = "drifting" if abs(z) > z_max else "ok"
    sign = ">" if state == "drifting" else "≤"
    return Verdict(state, f"gap {gap:+.4f} vs reference {ref_gap:+.4f}: |z| = {abs(z):.1f} {sign} {z_max:g}",
                   "gap", detail)


def sequential_rule(
    count: np.ndarray, confidence_sum: np.ndarray, correct_sum: np.ndarray, *, alpha: float, tolerance: float,
    center: float = 0.0, since: str = "activation",
) -> Verdict:
    """Anytime-valid: drifting when the confidence sequence for E[correct − confidence] over every label since
    ``since`` misses [center − tolerance, center + tolerance] (``calibration.sequential``). Its false-alarm
    probability is ≤ α over the calibrator's life, however often it is evaluated; no n_min is needed."""
    seq = sequential.gap_sequence(count, confidence_sum, correct_sum, alpha=alpha, center=center,
                                  tolerance=tolerance)
    if seq.n == 0:
        return Verdict("insufficient_labels", f"no labels since {since}", "cs")
    detail = {"gap": seq.gap, "cs": [seq.lo, seq.hi], "alpha": alpha, "labelled_since": since, "n": int(seq.n),
              "null": [center - tolerance, center + tolerance]}
    where = f"confidence sequence [{seq.lo:+.4f}, {seq.hi:+.4f}] for accuracy − confidence over {int(seq.n)} labels"
    if seq.alarm:
        return Verdict("drifting", f"{where} excludes {center:+.4f} ± {tolerance:.4f}", "cs", detail)
    return Verdict("ok", f"{where} contains a point of {center:+.4f} ± {tolerance:.4f}", "cs", detail)
