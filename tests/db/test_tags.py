"""Request tags stored once (migration 0006), on both databases: one ``prediction_tags`` row per distinct
object through the bulk and the idempotent shipper paths, read back per prediction, and moved by the
migration in both directions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import uuid_utils
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from service.db.engine import make_engine
from service.db.migrate import downgrade, upgrade
from service.db.prediction_block import PredictionBlock
from service.db.prediction_rows import insert_blocks
from service.db.tables import Prediction, PredictionTags
from service.db.tags import prediction_tags, tags_id


def _block(n: int, tags: dict[str, object] | None) -> PredictionBlock:
    p = np.random.default_rng(n).dirichlet(np.ones(4), size=n).astype("<f4")
    return PredictionBlock("digits", 1, 1, datetime.now(UTC), [str(uuid_utils.uuid7()) for _ in range(n)],
                           np.log(p), p, p.max(axis=1).astype(np.float64), p.argmax(axis=1), tags)


def test_tags_id_ignores_key_order_and_tells_objects_apart() -> None:
    assert tags_id({"a": 1, "b": {"x": [1, 2], "y": None}}) == tags_id({"b": {"y": None, "x": [1, 2]}, "a": 1})
    assert tags_id({"a": 1}) != tags_id({"a": "1"}) and tags_id(None) is None
    assert len(tags_id({}) or "") == 32


def test_equal_tags_are_stored_once_through_both_shipper_paths(database_url: str) -> None:
    engine = make_engine(database_url)
    big = {"tenant": "a", "blob": "x" * 3000}
    first, second = _block(500, big), _block(300, dict(reversed(list(big.items()))))
    other, untagged = _block(2, {"tenant": "b"}), _block(3, None)
    assert insert_blocks(engine, [first, second, other, untagged], 60) == 805  # bulk path (COPY on PostgreSQL)
    again = _block(4, {"tenant": "b"})
    assert insert_blocks(engine, [first, again], 60) == 4  # re-shipped: the idempotent path
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(PredictionTags)).scalar_one() == 2
        assert session.execute(select(func.count()).select_from(Prediction)).scalar_one() == 809
        got = prediction_tags(session=session, ids=[first.ids[0], second.ids[-1], again.ids[1], untagged.ids[0]])
    assert got == {first.ids[0]: big, second.ids[-1]: big, again.ids[1]: {"tenant": "b"}}
    engine.dispose()


def test_the_migration_moves_existing_tags_and_back(database_url: str) -> None:
    downgrade(database_url, "0005")
    engine = make_engine(database_url)
    rows = [(str(uuid_utils.uuid7()), t) for t in ('{"a": 1, "b": "x"}', '{"b": "x", "a": 1}', '{"c": [1]}', None)]
    with engine.begin() as conn:  # the pre-0006 layout: a JSON copy in every row
        for pid, tags in rows:
            conn.execute(text("INSERT INTO predictions (id, model, version, calibrator_version, created_at, logits, "
                              "probabilities, confidence, class_index, tags) VALUES (:id, 'digits', 1, 1, "
                              ":at, :b, :b, 0.5, 0, :tags)"),
                         {"id": pid, "at": datetime.now(UTC), "b": b"\0\0\0\0", "tags": tags})
    upgrade(database_url)
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(PredictionTags)).scalar_one() == 2
        got = prediction_tags(session=session, ids=[pid for pid, _ in rows])
    assert got == {rows[0][0]: {"a": 1, "b": "x"}, rows[1][0]: {"a": 1, "b": "x"}, rows[2][0]: {"c": [1]}}
    downgrade(database_url, "0005")
    with engine.connect() as conn:
        back = dict(conn.execute(text("SELECT id, tags FROM predictions")).all())
    engine.dispose()
    as_dicts = {k: (v if isinstance(v, dict) or v is None else json.loads(v)) for k, v in back.items()}
    assert as_dicts == {rows[0][0]: {"a": 1, "b": "x"}, rows[1][0]: {"a": 1, "b": "x"}, rows[2][0]: {"c": [1]},
                        rows[3][0]: None}
    upgrade(database_url)
