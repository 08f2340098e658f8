"""Hour/day roll-ups: any window read from them equals the fine-bucket answer EXACTLY (SQLite and PostgreSQL),
including after the 0004 migration back-filled them from existing fine rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import Session

from service.calibration import metrics, streaming
from service.db.migrate import downgrade, upgrade
from service.db.rollups import rollup_ranges
from service.db.stats import BucketStats, add_bucket_stats, bucket_start, read_window
from service.db.tables import CalibrationBin, CalibrationClassBin, CalibrationTotals, CalibrationTotalsRollup
from tests.monitoring.stored import store_predictions, synthetic_probs

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
SPAN = timedelta(days=3, hours=5)


def _bucket_stats(probs: np.ndarray, labels: np.ndarray, times: list[datetime]) -> list[BucketStats]:
    """The feedback path's statistics: one BucketStats per (calibrator, one-minute bucket)."""
    groups: dict[datetime, list[int]] = {}
    for i, t in enumerate(times):
        groups.setdefault(bucket_start(t, 60), []).append(i)
    out = []
    for bucket, idx in groups.items():
        p, y = probs[idx].astype(np.float64), labels[idx]
        fine = streaming.BinStats.from_predictions(p, y)
        cls = streaming.ClasswiseStats.from_predictions(p, y, n_bins=15)
        out.append(BucketStats(("digits", 1, 1, bucket), fine.count, fine.confidence_sum, fine.correct_sum,
                               cls.count, cls.prob_sum, cls.label_sum, float(len(idx)), float(fine.nll_sum),
                               float(fine.brier_sum)))
    return out


def _random_times(n: int, rng: np.random.Generator) -> list[datetime]:
    return [T0 + timedelta(seconds=float(s)) for s in rng.uniform(0, SPAN.total_seconds(), n)]


def _windows(rng: np.random.Generator) -> list[tuple[datetime, datetime]]:
    """Aligned, unaligned, sub-hour, hour-straddling, multi-day and whole-history windows."""
    fixed = [(T0, T0 + SPAN), (T0 - timedelta(days=1), T0 + timedelta(days=9)),
             (T0 + timedelta(minutes=7, seconds=13), T0 + timedelta(minutes=49)),
             (T0 + timedelta(minutes=50), T0 + timedelta(hours=1, minutes=10)),
             (T0 + timedelta(hours=23, minutes=59), T0 + timedelta(days=2, hours=0, minutes=1)),
             (T0 + timedelta(days=1), T0 + timedelta(days=2)), (T0 + timedelta(hours=3), T0 + timedelta(hours=5))]
    out = list(fixed)
    for _ in range(25):
        a, b = sorted(rng.uniform(-3_600, SPAN.total_seconds() + 3_600, 2))
        out.append((T0 + timedelta(seconds=float(a)), T0 + timedelta(seconds=float(b))))
    return out


def _canonical(rows: object) -> tuple[object, ...]:
    r = vars(rows)
    return (sorted(r["fine"]), sorted(r["classes"]), r["n"], r["nll_sum"], r["brier_sum"], r["predicted"],
            sorted(r["confidence"]))


def test_rollup_ranges_cover_every_bucket_once() -> None:
    start, end = T0 + timedelta(minutes=37), T0 + timedelta(days=2, hours=4, minutes=11)
    r = rollup_ranges(start, end)
    assert r["f1"] == (start, T0 + timedelta(hours=1)) and r["f2"] == (T0 + timedelta(days=2, hours=4), end)
    assert r["h1"] == (T0 + timedelta(hours=1), T0 + timedelta(days=1))
    assert r["h2"] == (T0 + timedelta(days=2), T0 + timedelta(days=2, hours=4))
    assert r["d"] == (T0 + timedelta(days=1), T0 + timedelta(days=2))
    inside = rollup_ranges(T0 + timedelta(minutes=5), T0 + timedelta(minutes=55))
    assert inside["f1"] == (T0 + timedelta(minutes=5), T0 + timedelta(minutes=55))
    assert set(inside) == {"f1"}  # no hour or day rows for a window inside one hour


def test_rolled_up_windows_equal_fine_windows_exactly(database_url: str) -> None:
    engine = create_engine(database_url)
    rng = np.random.default_rng(5)
    probs, labels = synthetic_probs(3_000, seed=1)
    times = _random_times(3_000, rng)
    store_predictions(engine, probs, times)  # prediction_counts + confidence histogram, through the writer
    with Session(engine) as session:  # two feedback transactions, as two batches of labels would be
        add_bucket_stats(session, _bucket_stats(probs[:1_700], labels[:1_700], times[:1_700]))
        session.commit()
        add_bucket_stats(session, _bucket_stats(probs[1_700:], labels[1_700:], times[1_700:]))
        session.commit()
    with Session(engine) as session:
        days = session.scalars(select(CalibrationTotalsRollup.count).where(CalibrationTotalsRollup.span == 86400))
        assert sorted(days.all()) == sorted(float(sum(1 for t in times if t.date() == d)) for d in
                                            {t.date() for t in times})
        for start, end in _windows(rng):
            kw = {"model": "digits", "version": 1, "calibrator_version": 1, "start": start, "end": end}
            fine = read_window(session, rollups=False, **kw)
            rolled = read_window(session, **kw)
            assert _canonical(rolled) == _canonical(fine), (start, end)
            # and the fine answer is the raw rows' (ECE from the summed bins vs the calibration core)
            inside = np.array([start <= bucket_start(t, 60) < end for t in times])
            assert fine.n == inside.sum() and fine.predicted == inside.sum()
            if inside.sum() > 0:
                stats = streaming.BinStats(nll_sum=fine.nll_sum, brier_sum=fine.brier_sum)
                for b, n, c, a in fine.fine:
                    stats.count[b], stats.confidence_sum[b], stats.correct_sum[b] = n, c, a
                p = probs[inside].astype(np.float64)
                assert stats.ece(15) == pytest.approx(metrics.ece(p, labels[inside], n_bins=15), abs=1e-9)
                assert stats.nll == pytest.approx(metrics.nll(p, labels[inside]), abs=1e-7)
    engine.dispose()


def test_migration_backfills_rollups_equal_to_existing_fine_rows(database_url: str) -> None:
    downgrade(database_url, "0002")
    engine = create_engine(database_url)
    rng = np.random.default_rng(9)
    buckets = sorted({bucket_start(t, 60) for t in _random_times(400, rng)})
    base = {"model": "digits", "version": 1, "calibrator_version": 1}
    with engine.begin() as conn:  # values written before 0004: arbitrary floats, off any grid
        conn.execute(insert(CalibrationBin), [{**base, "bucket": b, "bin": int(rng.integers(300)), "count": 3.0,
                                               "confidence_sum": float(rng.uniform(0, 3)), "correct_sum": 2.0}
                                              for b in buckets])
        conn.execute(insert(CalibrationClassBin), [{**base, "bucket": b, "class_index": 2, "bin": 4, "count": 1.0,
                                                    "prob_sum": float(rng.uniform()), "label_sum": 1.0}
                                                   for b in buckets])
        conn.execute(insert(CalibrationTotals), [{**base, "bucket": b, "count": 3.0,
                                                  "nll_sum": float(rng.uniform(0, 9)),
                                                  "brier_sum": float(rng.uniform(0, 2))} for b in buckets])
    upgrade(database_url)
    with Session(engine) as session:
        for start, end in _windows(rng):
            kw = {"model": "digits", "version": 1, "calibrator_version": 1, "start": start, "end": end}
            assert _canonical(read_window(session, **kw)) == _canonical(read_window(session, rollups=False, **kw))
        whole = read_window(session, model="digits", version=1, calibrator_version=1, start=T0 - SPAN,
                            end=T0 + 3 * SPAN)
        assert whole.n == 3.0 * len(buckets)
    engine.dispose()
