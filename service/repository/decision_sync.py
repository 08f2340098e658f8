"""Which conformal calibrator and cost matrix each loaded version serves: the database's active ones, read
with the calibrator poll and swapped in with the calibrator (one immutable ``ActiveCalibration``).

A version registered from the repository with a ``conformal.json`` gets it as its first conformal
calibrator (source ``card``), on top of its first calibrator — in the same savepoint, so racing replicas
insert it once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from service.calibration import CalibrationInputError
from service.calibration.conformal import conformal_from_dict
from service.db import conformal as conformal_rows
from service.db import costs as cost_rows
from service.repository.card import CONFORMAL_FILE
from service.repository.loaded import ActiveConformal, ActiveCosts, LoadedVersion


@dataclass(frozen=True)
class ActiveDecisionVersions:
    """One poll's worth: (model, version, calibrator_version) → conformal_version, model → cost version."""

    conformal: dict[tuple[str, int, int], int]
    costs: dict[str, int]


def read_active(session: Session) -> ActiveDecisionVersions:
    return ActiveDecisionVersions(conformal_rows.active_conformal_versions(session=session),
                                  cost_rows.active_cost_matrix_versions(session=session))


def conformal_for(session: Session, loaded: LoadedVersion, calibrator_version: int,
                  active: ActiveDecisionVersions, current: ActiveConformal | None) -> ActiveConformal | None:
    """The active conformal calibrator of this calibrator version (the current object if unchanged)."""
    wanted = active.conformal.get((loaded.name, loaded.version, calibrator_version))
    if wanted is None:
        return None
    if current is not None and current.conformal_version == wanted:
        return current
    row = conformal_rows.get_conformal(session=session, model=loaded.name, version=loaded.version,
                                       conformal_version=wanted)
    if row is None:
        return None
    try:
        fitted = conformal_from_dict({"method": "split_conformal", "params": row.params})
    except CalibrationInputError:  # a stored row that cannot be served: serve no sets rather than fail
        return None
    return ActiveConformal(wanted, fitted) if fitted.n_classes_ == len(loaded.card.classes) else None


def costs_for(session: Session, loaded: LoadedVersion, active: ActiveDecisionVersions,
              current: ActiveCosts | None) -> ActiveCosts | None:
    """The model's active cost matrix, if it has this version's number of classes."""
    wanted = active.costs.get(loaded.name)
    if wanted is None:
        return None
    if current is not None and current.cost_matrix_version == wanted:
        return current
    row = cost_rows.get_cost_matrix(session=session, model=loaded.name, cost_matrix_version=wanted)
    if row is None or row.n_classes != len(loaded.card.classes):
        return None
    matrix = np.asarray(row.matrix, dtype=np.float64)
    matrix.flags.writeable = False
    return ActiveCosts(wanted, matrix, tuple(row.actions))


def insert_card_conformal(session: Session, loaded: LoadedVersion, calibrator_version: int) -> None:
    """Register ``conformal.json`` (if the version ships one) as the first, active conformal calibrator."""
    path = loaded.directory / CONFORMAL_FILE
    if not path.exists():
        return
    try:
        spec = json.loads(path.read_text())
        fitted = conformal_from_dict(spec)
    except ValueError:  # malformed (CalibrationInputError is one): the version serves no sets, and says so
        return
    row = conformal_rows.insert_conformal(
        session=session, model=loaded.name, version=loaded.version, calibrator_version=calibrator_version,
        params=fitted.to_dict()["params"], source="card", created_by="repository", n_fit=fitted.n_fit,
        evaluation=spec.get("evaluation"),
    )
    conformal_rows.activate_conformal(session=session, row=row)
