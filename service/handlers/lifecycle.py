"""Calibrator lifecycle: re-fit from stored feedback, evaluate on held-out labels, activate, roll back;
aliases and the audit log.

Every change is ONE database transaction together with its audit row; the process that made it serves it
at once, every other replica within ``calibrator_poll_seconds`` (it polls the active calibrator versions).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from service.calibration import (
    CALIBRATORS,
    CalibrationInputError,
    calibrator_from_dict,
    evaluate,
    fit_report,
    make_calibrator,
)
from service.calibration import paired_nll_gain as nll_gain
from service.db import aliases, audit
from service.db import calibrators as calibrator_rows
from service.db import costs as cost_rows
from service.db.engine import read_session
from service.db.predictions import labelled_logits
from service.db.tables import Calibrator
from service.errors import (
    CalibratorNotFound,
    InvalidInput,
    NoPreviousCalibrator,
    NotEnoughData,
    UnknownCalibrationMethod,
)
from service.handlers import decision_admin
from service.handlers.refit_options import RefitOptions
from service.handlers.shadow import end_on_activation, start_shadow
from service.repository.registry import Registry
from service.validation import check_alias


def check_enough(labels: np.ndarray, n_classes: int, options: RefitOptions) -> None:
    if len(labels) < options.min_labels:
        raise NotEnoughData(f"only {len(labels)} labelled predictions in the window; at least "
                            f"{options.min_labels} are needed to fit and evaluate a calibrator")
    counts = np.bincount(labels, minlength=n_classes)
    thin = [int(k) for k in np.flatnonzero(counts < options.min_per_class)]
    if thin:
        raise NotEnoughData(f"classes {thin} have fewer than {options.min_per_class} labels each in the window; "
                            "the fit and its held-out evaluation would not represent them")


def calibrator_public(r: Calibrator) -> dict[str, Any]:
    return {
        "calibrator_version": r.calibrator_version, "method": r.method, "params": r.params, "state": r.state,
        "source": r.source, "fit_window": r.fit_window, "n_fit": r.n_fit, "evaluation": r.evaluation,
        "created_at": r.created_at.isoformat(), "created_by": r.created_by,
        "activated_at": r.activated_at.isoformat() if r.activated_at else None,
        "previous_active": r.previous_active,
    }


class CalibratorLifecycle:
    def __init__(self, *, sessions: sessionmaker[Session], registry: Registry, max_shadows: int = 3) -> None:
        self.sessions = sessions
        self.registry = registry
        self.max_shadows = max_shadows  # a re-fit with activate=if_better_in_shadow goes into shadow

    def refit(self, *, model: str, version: str | int, options: RefitOptions, actor: str) -> dict[str, Any]:
        if options.method not in CALIBRATORS:
            raise UnknownCalibrationMethod(f"unknown calibration method '{options.method}'; choose one of "
                                           f"{', '.join(sorted(CALIBRATORS))}")
        try:
            make_calibrator(options.method, **options.params)  # bad hyperparameters: the caller's error
        except CalibrationInputError as exc:
            raise InvalidInput(str(exc)) from None
        loaded = self.registry.resolve(model, version)
        serving = loaded.serving
        assert serving is not None  # resolve() guarantees it
        with read_session(self.sessions) as session:
            logits, labels = labelled_logits(session=session, model=model, version=loaded.version,
                                             start=options.start, end=options.end, last_n=options.last_n)
        check_enough(labels, len(loaded.card.classes), options)
        try:
            report = fit_report(logits, labels, options.method, test_size=options.test_size, seed=options.seed,
                                **options.params)
        except CalibrationInputError as exc:  # the labelled window cannot support a fit and an evaluation
            raise NotEnoughData(str(exc)) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"cannot fit calibrator '{options.method}': {exc}") from None
        # the currently active calibrator on the very same held-out rows: the comparison that matters
        held_out = report.eval_index
        p_new = report.calibrator.predict_proba(logits[held_out])
        p_old = serving.calibrator.predict_proba(logits[held_out])
        gain, gain_lo, gain_hi = nll_gain(p_old, p_new, labels[held_out], seed=options.seed)
        evaluation = report.to_dict()
        evaluation["active"] = {"calibrator_version": serving.calibrator_version, "method": serving.method,
                                **evaluate(p_old, labels[held_out], seed=options.seed)}
        evaluation["nll_gain_vs_active"] = {"mean": gain, "ci": [gain_lo, gain_hi]}
        conformal = decision_admin.fit_refit_conformal(options.conformal, report.calibrator, logits, labels,
                                                       held_out, options.seed)
        if conformal is not None:
            evaluation["conformal"] = conformal.evaluation
        better = gain_lo > 0.0
        activate = options.activate == "always" or (options.activate == "if_better" and better)
        spec = report.calibrator.to_dict()
        result: dict[str, Any] = {
            "model": model, "version": loaded.version, "method": spec["method"], "params": spec["params"],
            "n_labels": int(len(labels)), "evaluation": evaluation, "better_than_active": better,
            "dry_run": options.dry_run, "activated": False, "calibrator_version": None,
        }
        if options.dry_run:
            return result
        window = {"last_n": options.last_n, "start": options.start.isoformat() if options.start else None,
                  "end": options.end.isoformat() if options.end else None}
        with self.sessions() as session:
            row = calibrator_rows.insert_calibrator(
                session=session, model=model, version=loaded.version, method=spec["method"], params=spec["params"],
                source="refit", created_by=actor, evaluation=evaluation, fit_window=window,
                n_fit=int(len(labels)),
            )
            if activate:
                calibrator_rows.activate_calibrator(session=session, row=row)
            elif options.activate == "if_better_in_shadow":
                start_shadow(session, model=model, version=loaded.version, calibrator_version=row.calibrator_version,
                             policy="if_better_in_shadow", margin=0.0, actor=actor, limit=self.max_shadows)
            conformal_version = None if conformal is None else decision_admin.store_conformal(
                session, model=model, version=loaded.version, calibrator_version=row.calibrator_version,
                report=conformal, actor=actor, activate=True)  # active for ITS calibrator, served when that is
            audit.record(session=session, actor=actor, action="refit", model=model, version=loaded.version,
                         detail={"calibrator_version": row.calibrator_version, "method": spec["method"],
                                 "policy": options.activate, "activated": activate, "n_labels": int(len(labels)),
                                 "conformal_version": conformal_version})
            session.commit()
            result.update(calibrator_version=row.calibrator_version, activated=activate, state=row.state,
                          conformal_version=conformal_version, in_shadow=options.activate == "if_better_in_shadow")
        self.registry.sync_calibrators()
        return result

    def activate(self, *, model: str, version: str | int, calibrator_version: int, actor: str) -> dict[str, Any]:
        loaded = self.registry.resolve(model, version)
        with self.sessions() as session:
            out = self._activate(session, model, loaded.version, calibrator_version, actor, "activate")
            session.commit()
        self.registry.sync_calibrators()
        return out

    def rollback(self, *, model: str, version: str | int, actor: str) -> dict[str, Any]:
        """Re-activate the calibrator the current one replaced: the read and the switch are one transaction."""
        loaded = self.registry.resolve(model, version)
        with self.sessions() as session:
            current = calibrator_rows.get_active(session=session, model=model, version=loaded.version)
            if current is None or current.previous_active is None:
                raise NoPreviousCalibrator(f"model '{model}' version {loaded.version} has no previous calibrator "
                                           "to roll back to")
            out = self._activate(session, model, loaded.version, current.previous_active, actor, "rollback")
            session.commit()
        self.registry.sync_calibrators()
        return out

    def _activate(self, session: Session, model: str, version: int, calibrator_version: int, actor: str,
                  action: str) -> dict[str, Any]:
        row = calibrator_rows.get_calibrator(session=session, model=model, version=version,
                                             calibrator_version=calibrator_version)
        if row is None:
            raise CalibratorNotFound(f"model '{model}' version {version} has no calibrator {calibrator_version}")
        calibrator_from_dict({"method": row.method, "params": row.params})  # refuse what cannot be served
        previous = calibrator_rows.activate_calibrator(session=session, row=row)
        end_on_activation(session, model=model, version=version, calibrator_version=calibrator_version, actor=actor,
                          action=action)
        before = previous.calibrator_version if previous else None
        audit.record(session=session, actor=actor, action=action, model=model, version=version,
                     detail={"calibrator_version": calibrator_version, "previous": before})
        return {"model": model, "version": version, "calibrator_version": calibrator_version,
                "previous_calibrator_version": before, "state": "active"}

    def set_alias(self, *, model: str, alias: str, version: int, actor: str) -> dict[str, Any]:
        check_alias(alias)  # before it reaches the String(64) column
        self.registry.resolve(model, version)  # must exist and be ready
        with self.sessions() as session:
            aliases.set_alias(session=session, model=model, alias=alias, version=version)
            audit.record(session=session, actor=actor, action="set_alias", model=model, version=version,
                         detail={"alias": alias})
            session.commit()
        self.registry.sync_calibrators(entries=[])
        return {"model": model, "alias": alias, "version": version}

    def history(self, *, model: str, version: int) -> list[dict[str, Any]]:
        with read_session(self.sessions) as session:
            rows = calibrator_rows.list_calibrators(session=session, model=model, version=version)
            return [calibrator_public(r) for r in rows]

    def audit_log(self, *, limit: int) -> list[dict[str, Any]]:
        with read_session(self.sessions) as session:
            return [{"at": r.at.isoformat(), "actor": r.actor, "action": r.action, "model": r.model,
                     "version": r.version, "detail": r.detail} for r in audit.recent(session=session, limit=limit)]

    def set_cost_matrix(self, *, model: str, body: Any, actor: str) -> dict[str, Any]:
        """A new, active cost-matrix version for ``model`` (validated against its classes; audited)."""
        with self.sessions() as session:
            out = decision_admin.set_cost_matrix(session, self.registry, model=model, body=body, actor=actor)
            session.commit()
        self.registry.sync_calibrators()
        return out

    def activate_cost_matrix(self, *, model: str, cost_matrix_version: int, actor: str) -> dict[str, Any]:
        """Re-activate a stored cost-matrix version (a rollback; audited)."""
        decision_admin.model_classes(self.registry, model)  # the model must be loaded
        with self.sessions() as session:
            out = decision_admin.activate_cost_matrix(session, model=model, cost_matrix_version=cost_matrix_version,
                                                      actor=actor)
            session.commit()
        self.registry.sync_calibrators()
        return out

    def cost_matrices(self, *, model: str) -> list[dict[str, Any]]:
        with self.sessions() as session:
            return [decision_admin.cost_matrix_public(r) for r in cost_rows.list_cost_matrices(session=session,
                                                                                               model=model)]

    def record(self, *, actor: str, action: str, model: str, detail: dict[str, Any]) -> None:
        """An audit row for an action taken elsewhere (repository load / unload)."""
        with self.sessions() as session:
            audit.record(session=session, actor=actor, action=action, model=model, version=None, detail=detail)
            session.commit()
