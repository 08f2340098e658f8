"""Time series for dashboards: one point per sub-window, all sub-windows summed in one SQL pass."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service.monitoring.reference import Reference
from service.monitoring.report import WindowQuery, ece_interval, judge, num
from service.monitoring.state import read_states


def series_report(
    session: Session, q: WindowQuery, edges: list[datetime], reference: Reference, n_boot: int = 50
) -> list[dict[str, Any]]:
    """Per sub-window: counts, coverage, ECE + CI, accuracy, confidence, drift verdict, confidence shift.

    ``reference`` must be built with the sub-window length (the σ rule compares like with like)."""
    points = []
    for state in read_states(session, q.scope, edges):
        fine, n = state.fine, state.fine.n
        if n > 0:
            ece, lo, hi = ece_interval(fine, q.n_bins, n_boot)
        else:
            ece = lo = hi = float("nan")
        checks = judge(q, state, ece, lo, reference, n_boot)
        points.append({
            "window": {"start": state.start.isoformat(), "end": state.end.isoformat()},
            "labelled": int(n), "predicted": int(state.predicted),
            "label_coverage": num(n / state.predicted) if state.predicted else None,
            "ece": num(ece), "ece_ci": [num(lo), num(hi)] if n > 0 else None,
            "accuracy": num(fine.accuracy), "mean_confidence": num(fine.mean_confidence),
            "expected_accuracy": num(state.expected_accuracy),
            "drift": checks["drift"],
            "psi": checks["confidence_shift"]["psi"], "ks": checks["confidence_shift"]["ks"],
        })
    return points
