"""Feedback rows: insert new labels (first write wins, enforced by the unique constraint), read stored ones."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import DateTime, Integer, String, Table, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.db.tables import Feedback


def insert_new_labels(*, session: Session, labels: dict[str, int], received_at: datetime) -> set[str]:
    """Insert ``prediction_id → label``, skipping ids that already have feedback; returns the ids inserted."""
    if not labels:
        return set()
    table = cast(Table, Feedback.__table__)
    if session.get_bind().dialect.name == "postgresql":
        # one statement, three array parameters: no per-row SQL, no per-batch statement compilation
        unnest = select(
            func.unnest(bindparam("ids", type_=postgresql.ARRAY(String))),
            func.unnest(bindparam("labels", type_=postgresql.ARRAY(Integer))),
            func.unnest(bindparam("at", type_=postgresql.ARRAY(DateTime(timezone=True)))),
        )
        stmt = (postgresql.insert(table).from_select(["prediction_id", "label", "received_at"], unnest)
                .on_conflict_do_nothing(index_elements=["prediction_id"]).returning(table.c.prediction_id))
        params = {"ids": list(labels), "labels": list(labels.values()), "at": [received_at] * len(labels)}
        return set(session.execute(stmt, params).scalars().all())
    # SQLite: Core executemany + RETURNING ("insertmanyvalues" batches rows from one cached statement)
    stmt = (sqlite.insert(table).on_conflict_do_nothing(index_elements=["prediction_id"])
            .returning(table.c.prediction_id))
    rows = [{"prediction_id": p, "label": lab, "received_at": received_at} for p, lab in labels.items()]
    return set(session.execute(stmt, rows).scalars().all())


def stored_labels(*, session: Session, ids: list[str]) -> dict[str, int]:
    """The label already stored for each of ``ids`` that has one."""
    if not ids:
        return {}
    stmt = select(Feedback.prediction_id, Feedback.label).where(Feedback.prediction_id.in_(ids))
    return {str(row[0]): int(row[1]) for row in session.execute(stmt)}
