"""Audit log of admin actions (written in the same transaction as the action itself)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db.tables import AuditLog


def record(
    *, session: Session, actor: str, action: str, model: str | None, version: int | None, detail: dict[str, Any]
) -> None:
    session.add(
        AuditLog(
            at=datetime.now(UTC),
            actor=actor,
            action=action,
            model=model,
            version=version,
            detail=json.dumps(detail, sort_keys=True, default=str),
        )
    )


def recent(*, session: Session, limit: int = 100) -> list[AuditLog]:
    return list(session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)))
