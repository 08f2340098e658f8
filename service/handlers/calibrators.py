"""Calibrator lifecycle: re-fit from stored feedback, evaluate on held-out labels, activate, roll back.

Every action is one database transaction together with its audit-log row; the process that made the
change applies it at once, every other replica within ``calibrator_poll_seconds`` (it polls the active
calibrator versions: one indexed query, portable to SQLite and PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import select

from service.calibration import CalibrationInputError, calibrator_from_dict, evaluate, fit_report
from service.calibration.split import stratified_split
from service.db import audit
from service.db import calibrators as calibrator_rows
from service.db.tables import Feedback, Prediction
from service.errors import CalibratorNotFound, Conflict, InvalidInput, NotEnoughData
from service.handlers.services import Services

Policy = Literal["never", "if_better", "always"]


@dataclass
class RefitRequest:
    method: str = "temperature"
    last_n: int | None = 10_000
    start: datetime | None = None
    end: datetime | None = None
    dry_run: bool = False
    activate: Policy = "if_better"
    test_size: float = 0.3
    seed: int = 0
    min_labels: int = 100
    min_per_class: int = 2
    params: dict[str, Any] = field(default_factory=dict)


def labelled_logits(
    services: Services, *, model: str, version: int, req: RefitRequest
) -> tuple[np.ndarray, np.ndarray]:
    """(logits (n, K), labels (n,)) of labelled predictions in the requested window, newest first."""
    q = (select(Prediction.logits, Feedback.label).join(Feedback, Feedback.prediction_id == Prediction.id)
         .where(Prediction.model == model, Prediction.version == version)
         .order_by(Prediction.created_at.desc()))
    if req.start is not None:
        q = q.where(Prediction.created_at >= req.start)
    if req.end is not None:
        q = q.where(Prediction.created_at < req.end)
    if req.last_n is not None:
        q = q.limit(req.last_n)
    with services.sessions() as session:
        rows = session.execute(q).all()
    if not rows:
        return np.empty((0, 0)), np.empty(0, dtype=np.int64)
    logits = np.stack([np.frombuffer(b, dtype="<f4") for b, _ in rows]).astype(np.float64)
    return logits, np.asarray([lab for _, lab in rows], dtype=np.int64)


def check_enough(labels: np.ndarray, n_classes: int, req: RefitRequest) -> None:
    if len(labels) < req.min_labels:
        raise NotEnoughData(f"only {len(labels)} labelled predictions in the window; at least "
                            f"{req.min_labels} are needed to fit and evaluate a calibrator")
    counts = np.bincount(labels, minlength=n_classes)
    thin = [int(k) for k in np.flatnonzero(counts < req.min_per_class)]
    if thin:
        raise NotEnoughData(f"classes {thin} have fewer than {req.min_per_class} labels each in the window; "
                            "the fit and its held-out evaluation would not represent them")


def paired_nll_gain(p_old: np.ndarray, p_new: np.ndarray, labels: np.ndarray, *, n_boot: int = 1000,
                    seed: int = 0) -> tuple[float, float, float]:
    """Mean per-sample NLL(old) − NLL(new) on the same held-out rows, with a 95% bootstrap CI."""
    idx = np.arange(len(labels))
    eps = 1e-12
    d = (-np.log(np.clip(p_old[idx, labels], eps, 1.0))) - (-np.log(np.clip(p_new[idx, labels], eps, 1.0)))
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    return float(d.mean()), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def refit(services: Services, *, model: str, version: str | int, req: RefitRequest, actor: str) -> dict[str, Any]:
    loaded = services.registry.resolve(model, version)
    n_classes = len(loaded.card.classes)
    logits, labels = labelled_logits(services, model=model, version=loaded.version, req=req)
    check_enough(labels, n_classes, req)
    try:
        report = fit_report(logits, labels, req.method, test_size=req.test_size, seed=req.seed, **req.params)
    except CalibrationInputError as exc:
        raise NotEnoughData(str(exc)) from None
    except (KeyError, TypeError) as exc:
        raise InvalidInput(f"cannot fit calibrator '{req.method}': {exc}") from None
    evaluation = report.to_dict()
    # the currently active calibrator on the very same held-out rows: the comparison that matters
    serving = loaded.serving
    assert serving is not None
    _, held_out = stratified_split(labels, test_size=req.test_size, seed=req.seed)  # fit_report's own split
    p_new = report.calibrator.predict_proba(logits[held_out])
    p_old = serving.calibrator.predict_proba(logits[held_out])
    gain, gain_lo, gain_hi = paired_nll_gain(p_old, p_new, labels[held_out], seed=req.seed)
    evaluation["active"] = {"calibrator_version": serving.calibrator_version, "method": serving.method,
                            **evaluate(p_old, labels[held_out], seed=req.seed)}
    evaluation["nll_gain_vs_active"] = {"mean": gain, "ci": [gain_lo, gain_hi]}
    better = gain_lo > 0.0
    activate = req.activate == "always" or (req.activate == "if_better" and better)
    window = {"last_n": req.last_n, "start": req.start.isoformat() if req.start else None,
              "end": req.end.isoformat() if req.end else None}
    result: dict[str, Any] = {
        "model": model, "version": loaded.version, "method": report.calibrator.to_dict()["method"],
        "params": report.calibrator.to_dict()["params"], "n_labels": int(len(labels)), "evaluation": evaluation,
        "better_than_active": better, "dry_run": req.dry_run, "activated": False, "calibrator_version": None,
    }
    if req.dry_run:
        return result
    spec = report.calibrator.to_dict()
    with services.sessions() as session:
        row = calibrator_rows.insert_calibrator(
            session=session, model=model, version=loaded.version, method=spec["method"], params=spec["params"],
            source="refit", created_by=actor, evaluation=evaluation, fit_window=window, n_fit=int(len(labels)),
        )
        if activate:
            calibrator_rows.activate_calibrator(session=session, row=row)
        audit.record(session=session, actor=actor, action="refit", model=model, version=loaded.version,
                     detail={"calibrator_version": row.calibrator_version, "method": spec["method"],
                             "policy": req.activate, "activated": activate, "n_labels": int(len(labels))})
        session.commit()
        result.update(calibrator_version=row.calibrator_version, activated=activate, state=row.state)
    services.registry.sync_calibrators()
    return result


def activate(services: Services, *, model: str, version: str | int, calibrator_version: int, actor: str,
             action: str = "activate") -> dict[str, Any]:
    loaded = services.registry.resolve(model, version)
    with services.sessions() as session:
        row = calibrator_rows.get_calibrator(session=session, model=model, version=loaded.version,
                                             calibrator_version=calibrator_version)
        if row is None:
            raise CalibratorNotFound(f"model '{model}' version {loaded.version} has no calibrator "
                                     f"{calibrator_version}")
        calibrator_from_dict({"method": row.method, "params": row.params})  # refuse what cannot be served
        previous = calibrator_rows.activate_calibrator(session=session, row=row)
        audit.record(session=session, actor=actor, action=action, model=model, version=loaded.version,
                     detail={"calibrator_version": calibrator_version,
                             "previous": previous.calibrator_version if previous else None})
        session.commit()
    services.registry.sync_calibrators()
    return {"model": model, "version": loaded.version, "calibrator_version": calibrator_version,
            "previous_calibrator_version": previous.calibrator_version if previous else None, "state": "active"}


def rollback(services: Services, *, model: str, version: str | int, actor: str) -> dict[str, Any]:
    loaded = services.registry.resolve(model, version)
    with services.sessions() as session:
        current = calibrator_rows.get_active(session=session, model=model, version=loaded.version)
        if current is None or current.previous_active is None:
            raise Conflict(f"model '{model}' version {loaded.version} has no previous calibrator to roll back to")
        target = current.previous_active
    return activate(services, model=model, version=loaded.version, calibrator_version=target, actor=actor,
                    action="rollback")
