"""Cost matrices per model: every change is a new version (the old one retired, never overwritten), so a
decision in a response names exactly which costs produced it. The admin handler audits each call."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.db.tables import CostMatrix


def get_active_cost_matrix(*, session: Session, model: str) -> CostMatrix | None:
    return session.scalar(select(CostMatrix).where(CostMatrix.model == model, CostMatrix.state == "active"))


def get_cost_matrix(*, session: Session, model: str, cost_matrix_version: int) -> CostMatrix | None:
    return session.scalar(
        select(CostMatrix).where(CostMatrix.model == model, CostMatrix.cost_matrix_version == cost_matrix_version)
    )


def _activate(session: Session, row: CostMatrix) -> CostMatrix | None:
    previous = get_active_cost_matrix(session=session, model=row.model)
    if previous is not None and previous.id == row.id:
        return None
    if previous is not None:  # retire first: the partial unique index allows one active row per model
        session.execute(update(CostMatrix).where(CostMatrix.id == previous.id).values(state="retired"))
        session.flush()
    row.state = "active"
    row.activated_at = datetime.now(UTC)
    session.flush()
    return previous


def set_cost_matrix(
    *, session: Session, model: str, matrix: list[list[float]], actions: list[str], n_classes: int, created_by: str
) -> tuple[CostMatrix, CostMatrix | None]:
    """Store ``matrix`` (validated by the caller: ``calibration.decisions.check_cost_matrix``) as the model's
    next version and activate it; returns (new row, the row it replaced). A concurrent call with the same
    version number fails on the unique constraint (IntegrityError) instead of creating a duplicate."""
    current = session.scalar(select(func.max(CostMatrix.cost_matrix_version)).where(CostMatrix.model == model))
    row = CostMatrix(
        model=model,
        cost_matrix_version=int(current or 0) + 1,
        matrix=matrix,
        actions=actions,
        n_classes=n_classes,
        state="candidate",
        created_at=datetime.now(UTC),
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return row, _activate(session, row)


def activate_cost_matrix(*, session: Session, row: CostMatrix) -> CostMatrix | None:
    """Re-activate an earlier version (a rollback); returns the row it replaced."""
    return _activate(session, row)


def list_cost_matrices(*, session: Session, model: str) -> list[CostMatrix]:
    return list(
        session.scalars(select(CostMatrix).where(CostMatrix.model == model).order_by(CostMatrix.cost_matrix_version))
    )


def active_cost_matrix_versions(*, session: Session) -> dict[str, int]:
    """model → active cost_matrix_version: the replicas' cheap poll."""
    rows = session.execute(
        select(CostMatrix.model, CostMatrix.cost_matrix_version).where(CostMatrix.state == "active")
    )
    return {str(m): int(v) for m, v in rows}


def matrices_by_version(*, session: Session, keys: set[tuple[str, int]]) -> dict[tuple[str, int], list[list[float]]]:
    """(model, cost_matrix_version) → matrix, for the versions that labelled decisions were made under."""
    out: dict[tuple[str, int], list[list[float]]] = {}
    for model, version in keys:
        row = get_cost_matrix(session=session, model=model, cost_matrix_version=version)
        if row is not None:
            out[(model, version)] = row.matrix
    return out
