"""The ``decisions`` part of a calibration window: read the window's conformal / decision sums and its
labelled confidence bins, and judge them (``decision_window``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service.db import conformal as conformal_rows
from service.db.decision_stats import read_conformal_window, read_decision_window
from service.db.stats import Scope
from service.monitoring.decision_window import conformal_section, decision_section, selective_section
from service.monitoring.state import read_states


def decisions_report(session: Session, scope: Scope, start: datetime, end: datetime, *, false_alarm: float,
                     delta: float, n_min: int) -> dict[str, Any]:
    """``{"conformal": [...], "decisions": [...], "selective": {...} | None}`` for [start, end)."""
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
    states = read_states(session, scope, [start, end])
    fine = states[0].fine if states else None
    return {
        "conformal": conformal_section(conformal, fitted, false_alarm=false_alarm, delta=delta, n_min=n_min),
        "decisions": decision_section(decisions),
        "selective": selective_section(fine.count, fine.correct_sum) if fine is not None else None,
    }
