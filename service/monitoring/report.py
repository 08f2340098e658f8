"""Window metrics for one model version: read the O(buckets × bins) state, compute, judge drift."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service.calibration import streaming
from service.calibration.classwise_stats import ClasswiseStats
from service.db.stats import Scope, WindowRows
from service.db.window_sums import read_labelled_bins, read_window
from service.monitoring import drift, shift
from service.monitoring.reference import Reference
from service.monitoring.state import WindowState, classwise_from_rows, fine_from_rows, state_from_rows

RULES = ("ci", "sigma")


@dataclass(frozen=True)
class WindowQuery:
    """Everything a window report needs besides the window itself."""

    scope: Scope
    n_classes: int
    n_bins: int
    n_min: int
    tolerance: float
    rule: str = "ci"
    reference_source: str = "auto"
    class_bins: int = 15  # the class-wise table is stored at the service's ``ece_bins``
    cs_alpha: float = 0.05  # the anytime-valid rule's false-alarm probability over the calibrator's life
    classwise_view: bool = False  # add the per-class reliability diagrams (``view=classwise``)


def num(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def ece_interval(fine: streaming.BinStats, n_bins: int, n_boot: int) -> tuple[float, float, float]:
    """(ECE, lower, upper): the 90% bootstrap interval, i.e. one-sided 95% bounds. Its lower end IS the CI
    rule's statistic, so the interval a dashboard shows is the one the verdict uses (one bootstrap, not two:
    each costs ~5 ms, a quarter of the query's budget)."""
    return streaming.ece_ci_from_bins(fine, n_bins=n_bins, n_boot=n_boot, seed=0, alpha=drift.DRIFT_ALPHA)


def judge(
    q: WindowQuery, state: WindowState, ece: float, ece_lo: float, reference: Reference, n_boot: int
) -> dict[str, Any]:
    """All drift checks for one window, the selected rule's verdict under ``drift``."""
    n, t, fine = state.fine.n, state.start, state.fine
    ref_ece = ref_hi = None
    source = "none"
    if n >= q.n_min:  # the reference bootstrap only when a verdict is possible
        ref_ece, ref_hi, source = reference.ci_bound(t, n, source=q.reference_source, n_bins=q.n_bins,
                                                     n_min=q.n_min, n_boot=n_boot)
    ci = drift.ci_rule(n, ece_lo, ref_hi, n_min=q.n_min, tolerance=q.tolerance, source=source)
    sigma = drift.sigma_rule(n, ece, reference.window_eces(t, n_bins=q.n_bins, n_min=q.n_min), n_min=q.n_min)
    gap, se = drift.gap_and_se(fine.count, fine.confidence_sum, fine.correct_sum)
    gap_verdict = drift.gap_rule(n, gap, se, reference.gap(t, n_min=q.n_min), n_min=q.n_min)
    expected = state.expected_accuracy
    return {
        "drift": (ci if q.rule == "ci" else sigma).to_dict(),
        "drift_checks": {"ci": ci.to_dict(), "sigma": sigma.to_dict(), "gap": gap_verdict.to_dict()},
        "reference": {"source": source, "ece": num(ref_ece), "ece_hi": num(ref_hi)},
        "accuracy_gap": {
            "expected_accuracy": num(expected), "realised_accuracy": num(fine.accuracy),
            "gap": num(expected - fine.accuracy), "labelled_gap": num(gap), "labelled_gap_se": num(se),
            "state": gap_verdict.state,
        },
        "confidence_shift": shift.confidence_shift(reference.confidence(t), state.confidence_count),
    }


def sequential_check(session: Session, q: WindowQuery, end: datetime, reference: Reference) -> dict[str, Any]:
    """The ``cs`` check over every label of the calibrator since its activation, up to ``end`` (one read of the
    roll-ups, only the labelled fine bins, whatever the calibrator's age)."""
    s, since = q.scope, reference.activated_at
    if s.calibrator_version is None or since is None or since >= end:
        return drift.Verdict("no_reference", "the confidence sequence runs per calibrator, from its activation",
                             "cs").to_dict()
    fine = fine_from_rows(read_labelled_bins(session, s, since, end))
    return drift.sequential_rule(fine.count, fine.confidence_sum, fine.correct_sum, alpha=q.cs_alpha,
                                 tolerance=q.tolerance, since=since.isoformat()).to_dict()


def read_rows(session: Session, scope: Scope, start: datetime, end: datetime) -> WindowRows:
    """The window's five sums (``service.db.window_sums``: O(log) rows per bin, the stable part memoised)."""
    return read_window(session, model=scope.model, version=scope.version, calibrator_version=scope.calibrator_version,
                       start=start, end=end)


def window_report(
    session: Session, q: WindowQuery, start: datetime, end: datetime, reference: Reference, n_boot: int = 200,
    rows: WindowRows | None = None,
) -> dict[str, Any]:
    """The window's JSON; ``rows`` are its sums if the caller has read them already (``read_rows``)."""
    s = q.scope
    rows = read_rows(session, s, start, end) if rows is None else rows
    state = state_from_rows(rows, start, end)
    fine, n = state.fine, state.fine.n
    out: dict[str, Any] = {
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "calibrator_version": s.calibrator_version, "n_bins": q.n_bins, "rule": q.rule,
        "labelled": int(n), "predicted": int(rows.predicted),
        "label_coverage": num(n / rows.predicted) if rows.predicted else None,
    }
    if n == 0:
        out.update(ece=None, ece_ci=None, mce=None, adaptive_ece=None, classwise_ece=None, brier=None, nll=None,
                   accuracy=None, mean_confidence=None, confidence_accuracy_gap=None, reliability=[])
        out.update(judge(q, state, float("nan"), float("nan"), reference, n_boot))
        out["drift_checks"]["cs"] = sequential_check(session, q, end, reference)
        return out
    ece_value, lo, hi = ece_interval(fine, q.n_bins, n_boot)
    cls = classwise_from_rows(rows, q.n_classes, q.class_bins)
    out.update(
        ece=num(ece_value), ece_ci=[num(lo), num(hi)], ece_ci_level=1 - drift.DRIFT_ALPHA, mce=num(fine.mce(q.n_bins)),
        adaptive_ece=num(fine.adaptive_ece_approx(q.n_bins)), classwise_ece=num(cls.classwise_ece()),
        classwise_bins=q.class_bins, brier=num(fine.brier), nll=num(fine.nll), accuracy=num(fine.accuracy),
        mean_confidence=num(fine.mean_confidence), confidence_accuracy_gap=num(fine.mean_confidence - fine.accuracy),
        reliability=reliability_rows(fine.reliability_bins(q.n_bins)),
    )
    if q.classwise_view:
        out["classwise_reliability"] = classwise_reliability(cls)
    out.update(judge(q, state, ece_value, lo, reference, n_boot))
    out["drift_checks"]["cs"] = sequential_check(session, q, end, reference)
    return out


def classwise_reliability(cls: ClasswiseStats) -> list[dict[str, Any]]:
    """Per class k, the reliability diagram of q_k (the predicted probability of class k, not just the top
    label's): per equal-width bin, count, mean q_k and the frequency of y = k (Kull et al. 2019, classwise
    calibration). Bins are the stored ``ece_bins``."""
    n_bins = cls.count.shape[1]
    out = []
    for k in range(cls.count.shape[0]):
        bins = []
        for m in range(n_bins):
            count = float(cls.count[k, m])
            bins.append({"bin": m, "lo": m / n_bins, "hi": (m + 1) / n_bins, "count": int(count),
                         "probability": num(cls.prob_sum[k, m] / count) if count else None,
                         "frequency": num(cls.label_sum[k, m] / count) if count else None})
        n = float(cls.count[k].sum())
        gap = float(np.abs(cls.label_sum[k] - cls.prob_sum[k]).sum()) / n if n else None
        out.append({"class_index": k, "ece": num(gap), "bins": bins})
    return out


def reliability_rows(rel: Any) -> list[dict[str, Any]]:
    """Reliability-diagram bins as JSON rows (count, mean confidence, accuracy, edges)."""
    d = rel if isinstance(rel, dict) else vars(rel)
    edges = np.asarray(d["edges"])
    rows = []
    for m in range(len(edges) - 1):
        count = float(np.asarray(d["count"])[m])
        rows.append({"bin": m, "lo": float(edges[m]), "hi": float(edges[m + 1]), "count": int(count),
                     "confidence": num(np.asarray(d["confidence"])[m]) if count else None,
                     "accuracy": num(np.asarray(d["accuracy"])[m]) if count else None})
    return rows
