"""Aliases (``production``, ``staging``, any name) → model version, stored so every replica agrees."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.tables import Alias


def all_aliases(*, session: Session) -> dict[tuple[str, str], int]:
    return {(a.model, a.alias): a.version for a in session.scalars(select(Alias))}


def set_alias(*, session: Session, model: str, alias: str, version: int) -> None:
    row = session.get(Alias, (model, alias))
    if row is None:
        session.add(Alias(model=model, alias=alias, version=version, updated_at=datetime.now(UTC)))
    else:
        row.version = version
        row.updated_at = datetime.now(UTC)
    session.flush()
