"""Which calibrator each loaded version serves: the database's active one, swapped in atomically.

A version with no calibrator row yet gets its ``calibrator.json`` (or identity) inserted as calibrator
version 1, active — the version's first calibrator. Workers and replicas starting together race for that
insert; the loser hits the unique constraint inside a savepoint and adopts the winner's row.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.calibration import calibrator_from_dict
from service.db import calibrators as calibrator_rows
from service.repository.card import CALIBRATOR_FILE
from service.repository.decision_sync import conformal_for, costs_for, insert_card_conformal, read_active
from service.repository.loaded import ActiveCalibration, LoadedVersion


def serve_active_calibrators(session: Session, versions: list[LoadedVersion]) -> int:
    """Point each version's ``serving`` at its active calibrator, the conformal calibrator fitted on it and
    the model's cost matrix; returns how many were swapped."""
    active = calibrator_rows.active_versions(session=session)
    decisions = read_active(session)
    swaps = 0
    for loaded in versions:
        cv = active.get((loaded.name, loaded.version))
        if cv is None:
            cv = _ensure_first(session, loaded)
            if cv is None:
                continue
            decisions = read_active(session)  # the first calibrator may have brought a conformal one
        current = loaded.serving
        if current is None or current.calibrator_version != cv:
            row = calibrator_rows.get_calibrator(session=session, model=loaded.name, version=loaded.version,
                                                 calibrator_version=cv)
            if row is None:
                continue
            current = ActiveCalibration(cv, row.method, calibrator_from_dict({"method": row.method,
                                                                              "params": row.params}))
        conformal = conformal_for(session, loaded, cv, decisions, current.conformal)
        costs = costs_for(session, loaded, decisions, current.costs)
        if current is not loaded.serving or conformal is not current.conformal or costs is not current.costs:
            # one assignment of an immutable object: requests see the old or the new state, never a mix
            loaded.serving = ActiveCalibration(current.calibrator_version, current.method, current.calibrator,
                                               conformal, costs)
            swaps += 1
    return swaps


def _ensure_first(session: Session, loaded: LoadedVersion) -> int | None:
    try:
        with session.begin_nested():  # a savepoint: losing the race keeps the session usable
            return _insert_first(session, loaded)
    except IntegrityError:  # another worker or replica registered it first
        return calibrator_rows.active_versions(session=session).get((loaded.name, loaded.version))


def _insert_first(session: Session, loaded: LoadedVersion) -> int:
    path = loaded.directory / CALIBRATOR_FILE
    spec: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"method": "identity", "params": {}}
    existing = calibrator_rows.list_calibrators(session=session, model=loaded.name, version=loaded.version)
    if existing:  # rows exist but none active (all retired by hand): re-activate the newest
        row = existing[-1]
    else:
        row = calibrator_rows.insert_calibrator(
            session=session, model=loaded.name, version=loaded.version, method=spec["method"],
            params=spec.get("params", {}), source="card", created_by="repository",
            evaluation=spec.get("evaluation"), calibrator_version=1,  # the first: a racing twin collides
        )
    calibrator_rows.activate_calibrator(session=session, row=row)
    if not existing:  # conformal.json was fitted on this very calibrator's output
        insert_card_conformal(session, loaded, row.calibrator_version)
    session.flush()
    return row.calibrator_version
