"""Additive upsert (``INSERT … ON CONFLICT DO UPDATE SET x = x + excluded.x``) on SQLite and PostgreSQL.

This is how O(bins) calibration statistics merge: adding rows is associative, so concurrent writers and
replicas never need to read-modify-write. Keys are sorted so concurrent transactions lock rows in the
same order (no deadlocks on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def add_rows(
    conn: Connection | Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str],
    sums: Sequence[str],
) -> None:
    if not rows:
        return
    rows = sorted(rows, key=lambda r: tuple(r[k] for k in keys))
    dialect = conn.get_bind().dialect.name if isinstance(conn, Session) else conn.dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={s: table.c[s] + stmt.excluded[s] for s in sums}
    )
    conn.execute(stmt, list(rows))
