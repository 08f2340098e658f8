"""Window metrics for one model version: read O(buckets × bins) state, compute, judge drift."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service.calibration import streaming
from service.db import calibrators as calibrator_rows
from service.db.stats import WindowRows, read_window
from service.monitoring.drift import ci_rule, reference_from_evaluation


def stats_from_rows(rows: WindowRows, n_classes: int, n_bins: int) -> tuple[streaming.BinStats,
                                                                             streaming.ClasswiseStats]:
    fine = streaming.BinStats()
    for b, n, conf, correct in rows.fine:
        fine.count[b] += n
        fine.confidence_sum[b] += conf
        fine.correct_sum[b] += correct
    fine.nll_sum, fine.brier_sum = rows.nll_sum, rows.brier_sum
    k = max([n_classes, *[c + 1 for c, *_ in rows.classes]])
    cls = streaming.ClasswiseStats.empty(k, n_bins)
    for c, b, n, prob, label in rows.classes:
        cls.count[c, b] += n
        cls.prob_sum[c, b] += prob
        cls.label_sum[c, b] += label
    return fine, cls


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def window_metrics(
    session: Session, *, model: str, version: int, calibrator_version: int | None, start: datetime,
    end: datetime, n_classes: int, n_bins: int, n_min: int, tolerance: float, n_boot: int = 200,
) -> dict[str, Any]:
    rows = read_window(session, model=model, version=version, calibrator_version=calibrator_version,
                       start=start, end=end)
    fine, cls = stats_from_rows(rows, n_classes, n_bins)
    n = fine.n
    out: dict[str, Any] = {
        "window": {"start": start.isoformat(), "end": end.isoformat()},
        "calibrator_version": calibrator_version, "n_bins": n_bins,
        "labelled": int(n), "predicted": int(rows.predicted),
        "label_coverage": _num(n / rows.predicted) if rows.predicted else None,
    }
    if n == 0:
        out.update(ece=None, ece_ci=None, mce=None, adaptive_ece=None, classwise_ece=None, brier=None, nll=None,
                   accuracy=None, mean_confidence=None, reliability=[],
                   drift={"state": "insufficient_labels", "reason": "no labelled predictions in the window"})
        return out
    ece_value, lo, hi = streaming.ece_ci_from_bins(fine, n_bins=n_bins, n_boot=n_boot, seed=0)
    rel = fine.reliability_bins(n_bins)
    out.update(
        ece=_num(ece_value), ece_ci=[_num(lo), _num(hi)], mce=_num(fine.mce(n_bins)),
        adaptive_ece=_num(fine.adaptive_ece_approx(n_bins)), classwise_ece=_num(cls.classwise_ece()),
        brier=_num(fine.brier), nll=_num(fine.nll), accuracy=_num(fine.accuracy),
        mean_confidence=_num(fine.mean_confidence),
        reliability=reliability_rows(rel),
    )
    out["confidence_accuracy_gap"] = _num(fine.mean_confidence - fine.accuracy)
    reference = None
    if calibrator_version is not None:
        row = calibrator_rows.get_calibrator(session=session, model=model, version=version,
                                             calibrator_version=calibrator_version)
        reference = reference_from_evaluation(row.evaluation if row else None)
    out["reference"] = {"ece": reference[0], "ece_hi": reference[1]} if reference else None
    out["drift"] = ci_rule(n, lo, reference, n_min=n_min, tolerance=tolerance).to_dict()
    return out


def reliability_rows(rel: Any) -> list[dict[str, Any]]:
    """Reliability-diagram bins as JSON rows (count, mean confidence, accuracy, edges)."""
    d = rel if isinstance(rel, dict) else vars(rel)
    edges = np.asarray(d["edges"])
    rows = []
    for m in range(len(edges) - 1):
        count = float(np.asarray(d["count"])[m])
        rows.append({"bin": m, "lo": float(edges[m]), "hi": float(edges[m + 1]), "count": int(count),
                     "confidence": _num(np.asarray(d["confidence"])[m]) if count else None,
                     "accuracy": _num(np.asarray(d["accuracy"])[m]) if count else None})
    return rows
