"""The ``decisions`` part of a calibration window: read the window's conformal / decision sums and its
labelled confidence bins, and judge them (``decision_window``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service.calibration.streaming import BinStats
from service.db import conformal as conformal_rows
from service.db.decision_stats import read_conformal_window, read_decision_window
from service.db.stats import Scope
from service.db.window_sums import read_labelled_bins
from service.monitoring.decision_window import conformal_section, decision_section, selective_section
from service.monitoring.state import fine_from_rows


def decisions_report(session: Session, scope: Scope, start: datetime, end: datetime, *, false_alarm: float,
                     delta: float, n_min: int, fine: BinStats | None = None) -> dict[str, Any]:
    """``{"conformal": [...], "decisions": [...], "selective": {...} | None}`` for [start, end); ``fine`` is
    the window's labelled fine bins if the caller has them (else read from the roll-ups)."""
    conformal = read_conformal_window(session=session, model=scope.model, version=scope.version, start=start,
                                      end=end, calibrator_version=scope.calibrator_version)
    decisions = read_decision_window(session=session, model=scope.model, version=scope.version, start=start,
                                     end=end, calibrator_version=scope.calibrator_version)
    fitted: dict[int, tuple[list[int], bool]] = {}
    for cv in {s.conformal_version for s in conformal}:
        row = conformal_rows.get_conformal(session=session, model=scope.model, version=scope.version,
                                           conformal_version=cv)
        if row is not None:
            fitted[cv] = ([len(g) for g in row.params.get("scores", [])], bool(row.mondrian))
    if fine is None:
        fine = fine_from_rows(read_labelled_bins(session, scope, start, end))
    return {
        "conformal": conformal_section(conformal, fitted, false_alarm=false_alarm, delta=delta, n_min=n_min),
        "decisions": decision_section(decisions),
        "selective": selective_section(fine.count, fine.correct_sum),
    }
