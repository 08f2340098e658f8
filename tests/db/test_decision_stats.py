"""Served sets/decisions and their per-bucket statistics on both databases: the set mask round-trips, sums
add up across calls (as concurrent feedback batches would), and windows select by bucket and calibrator."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import uuid_utils

from service.db import decision_stats as ds
from service.db.engine import make_engine, make_sessionmaker
from service.db.prediction_block import PredictionBlock, decode, encode
from service.db.tables import Prediction
from service.db.writer import insert_blocks

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


def prediction(pid: str) -> Prediction:
    return Prediction(id=pid, model="m", version=1, calibrator_version=1, created_at=T0, logits=b"", probabilities=b"",
                      confidence=0.9, class_index=0)


def test_pack_and_unpack_sets() -> None:
    rng = np.random.default_rng(0)
    for k in (2, 7, 8, 9, 100):
        mask = rng.random(k) < 0.4
        assert np.array_equal(ds.unpack_set(ds.pack_set(mask), k), mask)
    assert ds.pack_set(np.array([True, False, True])) == bytes([0b101])  # class k is bit k
    assert ds.to_ppm(0.9) == 900_000 and ds.to_ppm(0.999999) == 999_999


def test_served_decisions_round_trip(database_url: str) -> None:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        session.add_all([prediction("p1"), prediction("p2")])
        session.flush()
        ds.insert_prediction_decisions(session=session, rows=[
            {"prediction_id": "p1", "conformal_version": 3, "coverage_ppm": 900_000,
             "set_mask": ds.pack_set(np.array([True, True, False])), "cost_matrix_version": None,
             "min_confidence_ppm": None, "action": None, "expected_cost": None},
            {"prediction_id": "p2", "conformal_version": None, "coverage_ppm": None, "set_mask": None,
             "cost_matrix_version": 2, "min_confidence_ppm": 700_000, "action": ds.ABSTAINED, "expected_cost": None},
        ])
        session.commit()
        found = ds.find_prediction_decisions(session=session, prediction_ids=["p1", "p2", "p3"])
        assert set(found) == {"p1", "p2"}
        mask = found["p1"][0].set_mask
        assert mask is not None and ds.unpack_set(mask, 3).tolist() == [True, True, False]
        assert found["p2"][0].action == ds.ABSTAINED and found["p2"][0].cost_matrix_version == 2
        assert found["p1"][1] == 0  # the served top class
        assert ds.find_prediction_decisions(session=session, prediction_ids=[]) == {}
    engine.dispose()


def key(bucket: datetime, calibrator_version: int = 1) -> dict[str, object]:
    return {"model": "m", "version": 1, "calibrator_version": calibrator_version, "bucket": bucket}


def test_window_sums_add_up(database_url: str) -> None:
    engine = make_engine(database_url)
    later = T0 + timedelta(minutes=1)
    with make_sessionmaker(engine)() as session:
        for _ in range(2):  # the same rows twice: sums double, keys stay unique
            ds.add_conformal_stats(session=session, rows=[
                {**key(T0), "conformal_version": 1, "coverage_ppm": 900_000, "count": 10.0, "covered_sum": 9.0,
                 "set_size_sum": 14.0},
                {**key(later), "conformal_version": 1, "coverage_ppm": 900_000, "count": 5.0, "covered_sum": 4.0,
                 "set_size_sum": 6.0},
                {**key(T0, 2), "conformal_version": 2, "coverage_ppm": 950_000, "count": 1.0, "covered_sum": 1.0,
                 "set_size_sum": 3.0},
            ])
            ds.add_decision_stats(session=session, rows=[
                {**key(T0), "cost_matrix_version": 1, "min_confidence_ppm": 0, "count": 4.0, "abstained_sum": 0.0,
                 "accepted_correct_sum": 3.0, "costed_count": 4.0, "expected_cost_sum": 1.0,
                 "realised_cost_sum": 2.0, "cost_gap_sq_sum": 1.5},
            ])
        session.commit()
        window = ds.read_conformal_window(session=session, model="m", version=1, start=T0, end=later + timedelta(1))
        assert window == [ds.ConformalSums(1, 900_000, 30.0, 26.0, 40.0), ds.ConformalSums(2, 950_000, 2.0, 2.0, 6.0)]
        first_bucket = ds.read_conformal_window(session=session, model="m", version=1, start=T0, end=later,
                                                calibrator_version=1)
        assert first_bucket == [ds.ConformalSums(1, 900_000, 20.0, 18.0, 28.0)]
        decisions = ds.read_decision_window(session=session, model="m", version=1, start=T0, end=later)
        assert decisions == [ds.DecisionSums(1, 0, 8.0, 0.0, 6.0, 8.0, 2.0, 4.0, 3.0)]
        assert ds.read_decision_window(session=session, model="x", version=1, start=T0, end=later) == []
    engine.dispose()


def test_a_served_row_is_deleted_with_its_prediction(database_url: str) -> None:
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        session.add(prediction("p1"))
        session.flush()
        ds.insert_prediction_decisions(session=session, rows=[{"prediction_id": "p1", "action": 0}])
        session.commit()
        session.delete(session.get(Prediction, "p1"))
        session.commit()
        assert ds.find_prediction_decisions(session=session, prediction_ids=["p1"]) == {}
    engine.dispose()


def test_served_rows_from_one_request_block() -> None:
    mask = np.array([[True, False, True], [False, True, False]])
    rows = ds.served_rows(["p1", "p2"], set_mask=mask, actions=np.array([2, ds.ABSTAINED]),
                          expected_cost=np.array([0.25, np.nan]), conformal_version=4, coverage=0.9,
                          cost_matrix_version=7, min_confidence=0.6)
    assert rows[0] == {"prediction_id": "p1", "conformal_version": 4, "coverage_ppm": 900_000,
                       "set_mask": bytes([0b101]), "cost_matrix_version": 7, "min_confidence_ppm": 600_000,
                       "action": 2, "expected_cost": 0.25}
    assert rows[1]["action"] == ds.ABSTAINED and rows[1]["expected_cost"] is None
    only_set = ds.served_rows(["p1"], set_mask=mask[:1], actions=None, expected_cost=None, conformal_version=4,
                              coverage=0.95, cost_matrix_version=None, min_confidence=None)
    assert only_set[0]["action"] is None and only_set[0]["coverage_ppm"] == 950_000


def served_block_of(n: int) -> tuple[PredictionBlock, np.ndarray]:
    rng = np.random.default_rng(n)
    mask = rng.random((n, 3)) < 0.5
    served = ds.ServedBlock(mask, np.array([2, ds.ABSTAINED, *range(n - 2)]), np.array([0.5, np.nan, *[0.1] * (n - 2)]),
                            4, 0.9, 7, 0.6)
    ids = [str(uuid_utils.uuid7()) for _ in range(n)]
    probs = rng.dirichlet(np.ones(3), size=n).astype("<f4")
    return PredictionBlock("m", 1, 1, T0, ids, np.log(probs), probs, probs.max(axis=1).astype(float),
                           probs.argmax(axis=1), None, served), mask


def test_the_spool_and_the_log_carry_served_blocks(database_url: str) -> None:
    block, mask = served_block_of(5)
    again = decode(encode(block))
    assert again.served is not None and again.served.set_mask is not None
    assert np.array_equal(again.served.set_mask, mask) and again.served.coverage == 0.9
    assert decode(encode(dataclasses.replace(block, served=None))).served is None
    engine = make_engine(database_url)
    assert insert_blocks(engine, [again], 60) == 5
    other, _ = served_block_of(3)
    assert insert_blocks(engine, [again, other], 60) == 3  # a re-shipped block: only the new rows, no duplicates
    with make_sessionmaker(engine)() as session:
        found = ds.find_prediction_decisions(session=session, prediction_ids=[*block.ids, *other.ids])
        assert len(found) == 8
        first = found[block.ids[0]][0]
        assert first.set_mask is not None and ds.unpack_set(first.set_mask, 3).tolist() == mask[0].tolist()
        assert (first.action, first.expected_cost, first.coverage_ppm) == (2, 0.5, 900_000)
        assert found[block.ids[1]][0].expected_cost is None  # abstained
    engine.dispose()


def test_windows_from_the_rollups_equal_the_rows_exactly(database_url: str) -> None:
    """Conformal and decision sums of many windows (minutes to weeks) read from the roll-up levels equal the
    sums of the rows written, computed here in Python: exact, because the cost sums are on their 2^-20 grid."""
    engine = make_engine(database_url)
    rng = np.random.default_rng(8)
    buckets = sorted({T0 + timedelta(minutes=int(m)) for m in rng.integers(0, 60 * 24 * 16, 300)})
    conformal, decisions = [], []
    for b in buckets:
        conformal.append({**key(b), "conformal_version": int(rng.integers(1, 3)), "coverage_ppm": 900_000,
                          "count": 3.0, "covered_sum": 2.0, "set_size_sum": 5.0})
        decisions.append({**key(b), "cost_matrix_version": 1, "min_confidence_ppm": 0, "count": 2.0,
                          "abstained_sum": 1.0, "accepted_correct_sum": 1.0, "costed_count": 2.0,
                          "expected_cost_sum": float(rng.uniform(0, 3)), "realised_cost_sum": float(rng.uniform(0, 3)),
                          "cost_gap_sq_sum": float(rng.uniform(0, 9))})
    grid = 2.0 ** 20
    with make_sessionmaker(engine)() as session:
        ds.add_conformal_stats(session=session, rows=conformal)
        ds.add_decision_stats(session=session, rows=decisions)
        session.commit()
        windows = [(T0 - timedelta(days=2), T0 + timedelta(days=20)),
                   (T0 + timedelta(minutes=7), T0 + timedelta(days=9))]
        for _ in range(20):
            a, b = sorted(rng.integers(0, 60 * 24 * 16, 2))
            windows.append((T0 + timedelta(minutes=int(a), seconds=13), T0 + timedelta(minutes=int(b) + 1)))
        for start, end in windows:
            inside = [r for r in decisions if start <= r["bucket"] < end]  # type: ignore[operator]
            got = ds.read_decision_window(session=session, model="m", version=1, start=start, end=end)
            if not inside:
                assert got == []
                continue
            want = [sum(float(r[c]) for r in inside) for c in ("count", "abstained_sum", "accepted_correct_sum",
                                                                 "costed_count")]
            want += [sum(round(float(r[c]) * grid) / grid for r in inside)  # the grid, summed exactly
                     for c in ("expected_cost_sum", "realised_cost_sum", "cost_gap_sq_sum")]
            assert got == [ds.DecisionSums(1, 0, *want)], (start, end)
            by_version = {v: sum(1 for r in conformal if r["conformal_version"] == v and start <= r["bucket"] < end)
                          for v in (1, 2)}  # type: ignore[operator]
            sets = ds.read_conformal_window(session=session, model="m", version=1, start=start, end=end,
                                            calibrator_version=1)
            assert sets == [ds.ConformalSums(v, 900_000, 3.0 * n, 2.0 * n, 5.0 * n) for v, n in by_version.items() if n]
    engine.dispose()
