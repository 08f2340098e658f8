"""Conformal calibrator versions: insert, activate (one active per model version and probability calibrator),
read the active one, list the history, and the replicas' cheap poll of every active version."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.db.tables import ConformalCalibrator


def next_conformal_version(*, session: Session, model: str, version: int) -> int:
    current = session.scalar(
        select(func.max(ConformalCalibrator.conformal_version)).where(
            ConformalCalibrator.model == model, ConformalCalibrator.version == version
        )
    )
    return int(current or 0) + 1


def insert_conformal(
    *,
    session: Session,
    model: str,
    version: int,
    calibrator_version: int,
    params: dict[str, Any],
    source: str,
    created_by: str,
    n_fit: int,
    evaluation: dict[str, Any] | None = None,
    fit_window: dict[str, Any] | None = None,
) -> ConformalCalibrator:
    """A new candidate with the next free ``conformal_version`` of the model version (numbered across its
    probability calibrators, so a version number alone names one fitted set). ``params`` is
    ``SplitConformal.to_dict()["params"]``; its score and Mondrian flag are copied into columns for listing."""
    row = ConformalCalibrator(
        model=model,
        version=version,
        calibrator_version=calibrator_version,
        conformal_version=next_conformal_version(session=session, model=model, version=version),
        score=str(params["score"]),
        mondrian=bool(params["mondrian"]),
        params=params,
        state="candidate",
        source=source,
        n_fit=n_fit,
        fit_window=fit_window,
        evaluation=evaluation,
        created_at=datetime.now(UTC),
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return row


def get_active_conformal(
    *, session: Session, model: str, version: int, calibrator_version: int
) -> ConformalCalibrator | None:
    return session.scalar(
        select(ConformalCalibrator).where(
            ConformalCalibrator.model == model,
            ConformalCalibrator.version == version,
            ConformalCalibrator.calibrator_version == calibrator_version,
            ConformalCalibrator.state == "active",
        )
    )


def activate_conformal(*, session: Session, row: ConformalCalibrator) -> ConformalCalibrator | None:
    """Make ``row`` active for its probability calibrator; returns the one it replaced (retired first: the
    partial unique index allows one active row per (model, version, calibrator_version))."""
    previous = get_active_conformal(
        session=session, model=row.model, version=row.version, calibrator_version=row.calibrator_version
    )
    if previous is not None and previous.id == row.id:
        return None
    if previous is not None:
        session.execute(
            update(ConformalCalibrator).where(ConformalCalibrator.id == previous.id).values(state="retired")
        )
        session.flush()
    row.state = "active"
    row.activated_at = datetime.now(UTC)
    session.flush()
    return previous


def get_conformal(
    *, session: Session, model: str, version: int, conformal_version: int
) -> ConformalCalibrator | None:
    return session.scalar(
        select(ConformalCalibrator).where(
            ConformalCalibrator.model == model,
            ConformalCalibrator.version == version,
            ConformalCalibrator.conformal_version == conformal_version,
        )
    )


def list_conformal(*, session: Session, model: str, version: int) -> list[ConformalCalibrator]:
    return list(
        session.scalars(
            select(ConformalCalibrator)
            .where(ConformalCalibrator.model == model, ConformalCalibrator.version == version)
            .order_by(ConformalCalibrator.conformal_version)
        )
    )


def active_conformal_versions(*, session: Session) -> dict[tuple[str, int, int], int]:
    """(model, version, calibrator_version) → active conformal_version, for every model."""
    rows = session.execute(
        select(
            ConformalCalibrator.model,
            ConformalCalibrator.version,
            ConformalCalibrator.calibrator_version,
            ConformalCalibrator.conformal_version,
        ).where(ConformalCalibrator.state == "active")
    )
    return {(m, v, cv): conf for m, v, cv, conf in rows}
