"""Calibrator versions: insert, list, activate (one active per model version), read the active set."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.db.tables import Calibrator


def now() -> datetime:
    return datetime.now(UTC)


def next_calibrator_version(*, session: Session, model: str, version: int) -> int:
    current = session.scalar(
        select(func.max(Calibrator.calibrator_version)).where(
            Calibrator.model == model, Calibrator.version == version
        )
    )
    return int(current or 0) + 1


def insert_calibrator(
    *,
    session: Session,
    model: str,
    version: int,
    method: str,
    params: dict[str, Any],
    source: str,
    created_by: str,
    evaluation: dict[str, Any] | None = None,
    fit_window: dict[str, Any] | None = None,
    n_fit: int | None = None,
    calibrator_version: int | None = None,
) -> Calibrator:
    """A new candidate; ``calibrator_version`` defaults to the next free number. A concurrent insert of the
    same number fails on the unique constraint (IntegrityError) rather than creating a duplicate."""
    if calibrator_version is None:
        calibrator_version = next_calibrator_version(session=session, model=model, version=version)
    row = Calibrator(
        model=model,
        version=version,
        calibrator_version=calibrator_version,
        method=method,
        params=params,
        state="candidate",
        source=source,
        fit_window=fit_window,
        n_fit=n_fit,
        evaluation=evaluation,
        created_at=now(),
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return row


def activate_calibrator(*, session: Session, row: Calibrator) -> Calibrator | None:
    """Make ``row`` the active calibrator; returns the one it replaced. Retire first: the partial unique
    index allows a single active row per model version, so the order of the two updates matters."""
    previous = get_active(session=session, model=row.model, version=row.version)
    if previous is not None and previous.id == row.id:
        return None
    if previous is not None:
        session.execute(update(Calibrator).where(Calibrator.id == previous.id).values(state="retired"))
        session.flush()
    row.state = "active"
    row.activated_at = now()
    row.previous_active = previous.calibrator_version if previous is not None else None
    session.flush()
    return previous


def get_active(*, session: Session, model: str, version: int) -> Calibrator | None:
    return session.scalar(
        select(Calibrator).where(
            Calibrator.model == model, Calibrator.version == version, Calibrator.state == "active"
        )
    )


def get_calibrator(*, session: Session, model: str, version: int, calibrator_version: int) -> Calibrator | None:
    return session.scalar(
        select(Calibrator).where(
            Calibrator.model == model,
            Calibrator.version == version,
            Calibrator.calibrator_version == calibrator_version,
        )
    )


def list_calibrators(*, session: Session, model: str, version: int) -> list[Calibrator]:
    return list(
        session.scalars(
            select(Calibrator)
            .where(Calibrator.model == model, Calibrator.version == version)
            .order_by(Calibrator.calibrator_version)
        )
    )


def active_versions(*, session: Session) -> dict[tuple[str, int], int]:
    """(model, version) → active calibrator_version, for every model: the replicas' cheap poll."""
    rows = session.execute(
        select(Calibrator.model, Calibrator.version, Calibrator.calibrator_version).where(
            Calibrator.state == "active"
        )
    )
    return {(m, v): cv for m, v, cv in rows}


def activation_record(
    *, session: Session, model: str, version: int, calibrator_version: int
) -> tuple[datetime | None, datetime, dict[str, Any] | None] | None:
    """(activated_at, created_at, evaluation) of one calibrator: three columns, not an ORM entity, because
    every calibration query reads them (the drift reference)."""
    c = Calibrator
    row = session.execute(select(c.activated_at, c.created_at, c.evaluation).where(
        c.model == model, c.version == version, c.calibrator_version == calibrator_version)).first()
    return None if row is None else (row[0], row[1], row[2])
