"""Request tags, stored once (``prediction_tags``, migration 0006): a prediction row holds the 128-bit
SHA-256 prefix of its request's canonical tags JSON, and the tags themselves are one row per distinct object.

Before 0006 every row held its own copy: a 10,000-row request with 4 kB of tags wrote 40 MB of tags
(``python -m bench tag_storage`` measures both layouts)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any, cast

import orjson
from sqlalchemy import Connection, String, Table, any_, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.db.tables import Prediction, PredictionTags

LOOKUP_CHUNK = 1000


def tags_id(tags: dict[str, Any] | None) -> str | None:
    """The key of a tags object: equal objects (whatever their key order) share it."""
    if tags is None:
        return None
    return hashlib.sha256(orjson.dumps(tags, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def insert_tags(conn: Connection, tags: Iterable[dict[str, Any] | None]) -> None:
    """Store each distinct tags object once: ``INSERT … ON CONFLICT (id) DO NOTHING``, in key order (two
    shippers inserting the same objects lock them in the same order)."""
    distinct = {key: t for t in tags if t is not None and (key := tags_id(t)) is not None}
    if not distinct:
        return
    table = cast(Table, PredictionTags.__table__)
    module: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = module.insert(table).on_conflict_do_nothing(index_elements=["id"])
    conn.execute(stmt, [{"id": k, "tags": distinct[k]} for k in sorted(distinct)])


def prediction_tags(*, session: Session, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The request tags of the predictions among ``ids`` that have tags (one join per 1,000 ids)."""
    out: dict[str, dict[str, Any]] = {}
    postgres = session.get_bind().dialect.name == "postgresql"
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start:start + LOOKUP_CHUNK]
        match = (Prediction.id == any_(bindparam("ids", chunk, type_=postgresql.ARRAY(String))) if postgres
                 else Prediction.id.in_(chunk))
        stmt = (select(Prediction.id, PredictionTags.tags)
                .join(PredictionTags, PredictionTags.id == Prediction.tags_id).where(match))
        for pid, tags in session.execute(stmt):
            if isinstance(tags, dict):
                out[pid] = tags
    return out
