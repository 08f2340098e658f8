"""Slices in the database (SQLite and PostgreSQL): the admission bound under concurrent writers, and per-slice
statistics (fine buckets and roll-ups) equal to a hand computation on the rows of each slice."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import uuid_utils
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, func, insert, select
from sqlalchemy.orm import Session

from service.db.engine import make_engine, make_sessionmaker
from service.db.predictions import StoredPrediction
from service.db.slices import admit_values, admitted_values, read_slice_window
from service.db.stats import Scope, bucket_start
from service.db.tables import CalibrationSliceBin, CalibrationSliceBinRollup, Prediction, SliceValue
from service.db.tags import insert_tags, tags_id
from service.monitoring.slice_metrics import SliceMetrics
from service.monitoring.slices import OTHER, SliceRecorder
from tests.factories import hand_ece
from tests.monitoring.stored import synthetic_probs

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)




def test_admission_holds_the_bound_under_concurrent_writers(database_url: str) -> None:
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    rng = np.random.default_rng(3)
    pools = [sorted({f"v{int(i)}" for i in rng.integers(0, 40, 12)}) for _ in range(8)]
    seen: list[dict[str, int]] = []
    barrier = threading.Barrier(len(pools))

    def writer(values: list[str]) -> None:
        barrier.wait()
        with sessions() as session:
            seen.append(admit_values(session=session, model="digits", slice_key="country", values=set(values),
                                     max_values=5))
            session.commit()

    threads = [threading.Thread(target=writer, args=(p,)) for p in pools]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with sessions() as session:
        final = admitted_values(session=session, model="digits", slice_key="country")
        rows = session.execute(select(func.count()).select_from(SliceValue)).scalar_one()
        again = admit_values(session=session, model="digits", slice_key="country", values={"zzz"}, max_values=5)
    assert len(final) == rows == 5 and sorted(final.values()) == [0, 1, 2, 3, 4]
    assert all(set(s.items()) <= set(final.items()) for s in seen)  # nobody saw a value in another slot
    assert again == final  # full: a new value is not admitted
    engine.dispose()


def _tagged_rows(engine: object, n: int, rng: np.random.Generator, country: list[str] | None = None
                 ) -> tuple[list[StoredPrediction], list[int], list[dict[str, object]]]:
    probs, labels = synthetic_probs(n, seed=11)
    countries = ["fr", "de", "it", "es", "pl", "nl"]
    tags: list[dict[str, object]] = []
    for i in range(n):
        t: dict[str, object] = {"country": countries[int(rng.integers(len(countries)))] if country is None
                                else country[i], "age": int(i % 3)}
        if i % 7 == 0:
            del t["country"]  # no slice of that key
        if i % 11 == 0:
            t["country"] = {"nested": 1}  # ignored, like a missing key
        if i % 13 == 0:
            t["country"] = ""  # never admitted: "other"
        tags.append(t)
    times = [T0 + timedelta(seconds=float(s)) for s in rng.uniform(0, 3 * 86400, n)]
    rows = [StoredPrediction(str(uuid_utils.uuid7()), "digits", 1, 1, times[i], probs[i], np.log(probs[i]))
            for i in range(n)]
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(insert(Prediction), [
            {"id": r.id, "model": "digits", "version": 1, "calibrator_version": 1, "created_at": r.created_at,
             "logits": r.logits.tobytes(), "probabilities": r.probabilities.tobytes(),
             "confidence": float(r.probabilities.max()), "class_index": int(r.probabilities.argmax()),
             "tags_id": tags_id(tags[i])} for i, r in enumerate(rows)])
        insert_tags(conn, tags)
    return rows, labels.tolist(), tags


def test_recorded_slices_equal_the_rows_of_each_slice(database_url: str) -> None:
    engine = create_engine(database_url)
    rng = np.random.default_rng(2)
    rows, labels, tags = _tagged_rows(engine, 1500, rng)
    metrics = SliceMetrics(CollectorRegistry())
    recorder = SliceRecorder(keys=["country", "age"], max_values=4, bucket_seconds=60, counter_bins=15,
                             metrics=metrics)
    with Session(engine) as session:  # two feedback transactions
        recorder.record(session, rows[:900], labels[:900])
        session.commit()
        recorder.record(session, rows[900:], labels[900:])
        session.commit()
    probs = np.stack([r.probabilities for r in rows]).astype(np.float64)
    y = np.asarray(labels)
    with Session(engine) as session:
        admitted = admitted_values(session=session, model="digits", slice_key="country")
        assert len(admitted) == 4  # of 6 countries: the first four seen, the rest in "other"
        windows = [(T0, T0 + timedelta(days=3)), (T0 + timedelta(hours=5, minutes=7), T0 + timedelta(days=2, hours=1)),
                   (T0 + timedelta(minutes=3), T0 + timedelta(minutes=58))]
        for start, end in windows:
            got = read_slice_window(session, scope=Scope("digits", 1, 1), slice_key="country", slice_value=None,
                                    start=start, end=end)
            inside = np.array([start <= bucket_start(r.created_at, 60) < end for r in rows])
            for value in [*admitted, OTHER]:
                country = [t.get("country") for t in tags]
                member = np.array([isinstance(c, str) and (c == value if value != OTHER else c not in admitted)
                                   for c in country]) & inside
                bins = got.bins.get(value, [])
                assert sum(n for _, n, _, _ in bins) == member.sum(), (value, start)
                if member.sum():
                    counts = np.zeros(300)
                    conf = np.zeros(300)
                    correct = np.zeros(300)
                    for b, n, c, a in bins:
                        counts[b], conf[b], correct[b] = n, c, a
                    gaps = np.abs(correct.reshape(15, 20).sum(1) - conf.reshape(15, 20).sum(1)).sum() / counts.sum()
                    assert gaps == pytest.approx(hand_ece(probs[member], y[member]), abs=1e-6)
        # the roll-ups hold the same totals as the fine table
        fine = session.execute(select(func.sum(CalibrationSliceBin.count))).scalar_one()
        day = session.execute(select(func.sum(CalibrationSliceBinRollup.count))
                              .where(CalibrationSliceBinRollup.span == 86400)).scalar_one()
        assert fine == day
        ages = read_slice_window(session, scope=Scope("digits", 1, 1), slice_key="age", slice_value="2",
                                 start=T0, end=T0 + timedelta(days=4))
        assert sum(n for _, n, _, _ in ages.bins["2"]) == sum(1 for i in range(1500) if i % 3 == 2)
    # Prometheus: only the admitted values and "other", per configured key
    values = {s.labels["slice_value"] for fam in metrics.bin_count.collect() for s in fam.samples
              if s.labels["slice_key"] == "country"}
    assert values == {*admitted, OTHER}
    engine.dispose()


def test_a_batch_of_only_other_values_counts_them_under_other(database_url: str) -> None:
    engine = create_engine(database_url)
    rows, labels, _ = _tagged_rows(engine, 3, np.random.default_rng(0), country=["other", "", "x" * 200])
    recorder = SliceRecorder(keys=["country"], max_values=4, bucket_seconds=60, counter_bins=15,
                             metrics=SliceMetrics(CollectorRegistry()))
    with Session(engine) as session:
        recorder.record(session, rows, labels)
        session.commit()
        got = read_slice_window(session, scope=Scope("digits", 1, 1), slice_key="country", slice_value=None,
                                start=T0, end=T0 + timedelta(days=4))
        assert admitted_values(session=session, model="digits", slice_key="country") == {}
    assert set(got.bins) == {OTHER} and sum(n for _, n, _, _ in got.bins[OTHER]) == 3
    engine.dispose()
