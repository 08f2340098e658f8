"""The admin side of sets and decisions, called by ``CalibratorLifecycle``: a conformal calibrator fitted with
each re-fit, and the model's versioned cost matrix (set, list, re-activate), each change one transaction with
its audit row."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service.calibration import CalibrationInputError, Calibrator
from service.calibration.conformal_fitting import ConformalReport, fit_conformal
from service.calibration.decisions import check_action_names, check_cost_matrix
from service.db import audit
from service.db import conformal as conformal_rows
from service.db import costs as cost_rows
from service.db.tables import CostMatrix
from service.errors import CostMatrixNotFound, InvalidInput, ModelNotFound
from service.repository.registry import Registry


def fit_refit_conformal(kind: str, calibrator: Calibrator, logits: np.ndarray, labels: np.ndarray,
                        held_out: np.ndarray, seed: int) -> ConformalReport | None:
    """Sets for a re-fitted calibrator, on the labelled rows it did not see (its held-out part)."""
    if kind == "none":
        return None
    score = kind.removeprefix("mondrian_")
    probs = calibrator.predict_proba(logits[held_out])
    return fit_conformal(probs, labels[held_out], score=score, mondrian=kind.startswith("mondrian_"),  # type: ignore[arg-type]
                         seed=seed)


def store_conformal(session: Session, *, model: str, version: int, calibrator_version: int,
                    report: ConformalReport, actor: str, activate: bool) -> int:
    """Insert (and maybe activate) the re-fit's conformal calibrator in the caller's transaction."""
    row = conformal_rows.insert_conformal(
        session=session, model=model, version=version, calibrator_version=calibrator_version,
        params=report.conformal.to_dict()["params"], source="refit", created_by=actor,
        n_fit=report.conformal.n_fit, evaluation=report.evaluation,
    )
    if activate:
        conformal_rows.activate_conformal(session=session, row=row)
    return row.conformal_version


def model_classes(registry: Registry, model: str) -> list[str]:
    """The classes of the newest loaded version of ``model``: a cost matrix is per model, and a version with
    another number of classes simply serves no Bayes decisions (``repository.decision_sync.costs_for``)."""
    entry = registry.models.get(model)
    if entry is None or not entry.versions:
        raise ModelNotFound(f"model '{model}' is not loaded")
    return list(entry.versions[max(entry.versions)].card.classes)


def cost_matrix_public(row: CostMatrix) -> dict[str, Any]:
    return {"model": row.model, "cost_matrix_version": row.cost_matrix_version, "matrix": row.matrix,
            "actions": row.actions, "n_classes": row.n_classes, "state": row.state,
            "created_at": row.created_at.isoformat(), "created_by": row.created_by,
            "activated_at": row.activated_at.isoformat() if row.activated_at else None}


def set_cost_matrix(session: Session, registry: Registry, *, model: str, body: Any, actor: str) -> dict[str, Any]:
    """Validate ``{"matrix": [[…]], "actions"?: […]}`` against the model's classes, store it as the next
    version, activate it, audit it; the caller commits."""
    if not isinstance(body, dict) or set(body) - {"matrix", "actions"} or "matrix" not in body:
        raise InvalidInput('the body must be {"matrix": [[...], ...], "actions": [...]} (actions optional)')
    classes = model_classes(registry, model)
    try:
        matrix = check_cost_matrix(body["matrix"], len(classes))
        default_names = classes if matrix.shape[0] == len(classes) else None
        actions = body.get("actions")
        if actions is not None and not isinstance(actions, list):
            raise CalibrationInputError("actions must be a list of names")
        names = check_action_names(actions if actions is not None else default_names, matrix.shape[0])
    except CalibrationInputError as exc:
        raise InvalidInput(str(exc)) from None
    row, previous = cost_rows.set_cost_matrix(session=session, model=model, matrix=matrix.tolist(), actions=names,
                                              n_classes=len(classes), created_by=actor)
    audit.record(session=session, actor=actor, action="set_cost_matrix", model=model, version=None,
                 detail={"cost_matrix_version": row.cost_matrix_version, "shape": list(matrix.shape),
                         "previous": previous.cost_matrix_version if previous else None})
    return cost_matrix_public(row)


def activate_cost_matrix(session: Session, *, model: str, cost_matrix_version: int, actor: str) -> dict[str, Any]:
    row = cost_rows.get_cost_matrix(session=session, model=model, cost_matrix_version=cost_matrix_version)
    if row is None:
        raise CostMatrixNotFound(f"model '{model}' has no cost matrix version {cost_matrix_version}")
    previous = cost_rows.activate_cost_matrix(session=session, row=row)
    audit.record(session=session, actor=actor, action="activate_cost_matrix", model=model, version=None,
                 detail={"cost_matrix_version": cost_matrix_version,
                         "previous": previous.cost_matrix_version if previous else None})
    return cost_matrix_public(row)
