"""Roll-ups (10 minutes to a week): any window read from them equals the fine-bucket answer EXACTLY (SQLite and
PostgreSQL), including after the 0004 and 0007 migrations back-filled them from existing fine rows, and when the
memoised stable part of a window is invalidated by a late label."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import create_engine, event, func, insert, select
from sqlalchemy.orm import Session

from service.calibration import metrics, streaming
from service.calibration.classwise_stats import ClasswiseStats
from service.db.migrate import downgrade, upgrade
from service.db.rollups import LEVELS, level_span, quantized, rollup_ranges, split_stable
from service.db.stats import BucketStats, Scope, add_bucket_stats, bucket_start
from service.db.tables import (
    CalibrationBin,
    CalibrationClassBin,
    CalibrationTotals,
    CalibrationTotalsRollup,
)
from service.db.window_sums import clear_memo, read_labelled_bins, read_window
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
        cls = ClasswiseStats.from_predictions(p, y, n_bins=15)
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
             (T0 + timedelta(days=1), T0 + timedelta(days=2)), (T0 + timedelta(hours=3), T0 + timedelta(hours=5)),
             # whole weeks (Thursday to Thursday) inside, and a week boundary inside the data
             (T0 - timedelta(days=10, minutes=3), T0 + timedelta(days=12, minutes=1)),
             (T0 - timedelta(days=3), T0 + timedelta(days=3, hours=1, minutes=9)),
             (T0 + timedelta(minutes=13), T0 + timedelta(hours=7, minutes=21))]
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
    # 2026-03-01 is a Sunday; weeks are epoch-aligned and start on Thursdays (2026-03-05)
    start, end = T0 + timedelta(minutes=7), T0 + timedelta(days=30, hours=3, minutes=2)
    r = rollup_ranges(start, end)
    day = timedelta(days=1)
    assert r["a0"] == (start, T0 + timedelta(minutes=10))  # fine buckets to the first 10-minute boundary
    assert r["a1"] == (T0 + timedelta(minutes=10), T0 + timedelta(hours=1))
    assert r["a2"] == (T0 + timedelta(hours=1), T0 + timedelta(hours=6))
    assert r["a3"] == (T0 + timedelta(hours=6), T0 + day)
    assert r["a4"] == (T0 + day, T0 + 4 * day)
    assert r["m5"] == (T0 + 4 * day, T0 + 25 * day)  # three whole weeks, Thursday 03-05 to Thursday 03-26
    assert r["b4"] == (T0 + 25 * day, T0 + 30 * day)
    assert r["b3"] == (T0 + 30 * day, T0 + 30 * day)  # empty ranges are kept (one statement per top level)
    assert r["b2"] == (T0 + 30 * day, T0 + 30 * day + timedelta(hours=3))
    assert r["b1"] == r["b0"][:1] * 2 and r["b0"] == (T0 + 30 * day + timedelta(hours=3), end)
    assert split_stable(tuple(r)) == (("a0", "b0", "a1", "b1"), ("m5", "a2", "b2", "a3", "b3", "a4", "b4"))
    inside = rollup_ranges(T0 + timedelta(minutes=5), T0 + timedelta(minutes=55))
    assert inside == {"m1": (T0 + timedelta(minutes=10), T0 + timedelta(minutes=50)),
                      "a0": (T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)),
                      "b0": (T0 + timedelta(minutes=50), T0 + timedelta(minutes=55))}
    assert rollup_ranges(T0 + timedelta(minutes=1), T0 + timedelta(minutes=9)) == {
        "m0": (T0 + timedelta(minutes=1), T0 + timedelta(minutes=9))}


def test_rollup_ranges_partition_the_window_at_aligned_edges() -> None:
    """Every minute of [start, end) in exactly one range, every range's edges on its level's grid."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        a = T0 + timedelta(minutes=int(rng.integers(0, 60 * 24 * 40)))
        b = a + timedelta(minutes=int(rng.integers(1, 60 * 24 * 40)))
        pieces = sorted(rollup_ranges(a, b).items(), key=lambda kv: kv[1])
        covered = [(lo, hi) for _, (lo, hi) in pieces if lo < hi]
        assert covered[0][0] == a and covered[-1][1] == b
        assert all(x[1] == y[0] for x, y in zip(covered, covered[1:], strict=False))  # contiguous, no overlap
        for name, (lo, hi) in pieces:
            span = level_span(name)
            if span is not None:
                assert lo.timestamp() % span == 0 and hi.timestamp() % span == 0, (name, lo, hi)
        assert len(pieces) <= 2 * (len(LEVELS) - 1) + 1


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


def _statements(engine: object) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda c, cur, stmt, *a: seen.append(stmt))
    return seen


def test_memoised_stable_part_is_exact_and_invalidated_by_late_labels(database_url: str) -> None:
    """A 10-day window's hour-and-coarser ranges come from the memo while nothing lands in them (one statement
    per read), and a late label anywhere in them — a prediction days old — is seen by the next read."""
    clear_memo()
    engine = create_engine(database_url)
    rng = np.random.default_rng(11)
    probs, labels = synthetic_probs(2_000, seed=4)
    times = _random_times(2_000, rng)
    store_predictions(engine, probs, times)
    with Session(engine) as session:
        add_bucket_stats(session, _bucket_stats(probs[:1_500], labels[:1_500], times[:1_500]))
        session.commit()
    start, end = T0 - timedelta(days=4, minutes=17), T0 + timedelta(days=6, minutes=3)
    kw = {"model": "digits", "version": 1, "calibrator_version": 1, "start": start, "end": end}
    seen = _statements(engine)
    with Session(engine) as session:
        first = read_window(session, **kw)
        misses = len(seen)
        again = read_window(session, **kw)
        hits = len(seen) - misses
        assert _canonical(first) == _canonical(again) == _canonical(read_window(session, rollups=False, **kw))
        assert first.n == 1_500.0
    is_pg = engine.dialect.name == "postgresql"
    assert hits == 1 and misses == 2 + is_pg  # moving + fingerprint, then stable (+ PostgreSQL's SET LOCAL, once)
    ranges = rollup_ranges(start, end)
    stable = [ranges[n] for n in split_stable(tuple(ranges))[1]]
    late = [i for i in range(1_500, 2_000) if any(lo <= bucket_start(times[i], 60) < hi for lo, hi in stable)][:1]
    assert late  # the late label lands in a memoised range
    with Session(engine) as session:
        add_bucket_stats(session, _bucket_stats(probs[late], labels[late], [times[i] for i in late]))
        session.commit()
    with Session(engine) as session:
        after = read_window(session, **kw)
        assert after.n == 1_501.0
        assert _canonical(after) == _canonical(read_window(session, rollups=False, **kw))
        labelled = read_labelled_bins(session, Scope("digits", 1, 1), start, end)
        assert sorted(labelled.fine) == sorted(after.fine) and labelled.classes == [] and labelled.predicted == 0
    engine.dispose()


def test_migration_0007_backfills_and_removes_the_new_levels(database_url: str) -> None:
    engine = create_engine(database_url)
    rng = np.random.default_rng(2)
    probs, labels = synthetic_probs(600, seed=2)
    times = _random_times(600, rng)
    downgrade(database_url, "0006")  # before 0007: the hour and day levels only
    with Session(engine) as session:
        stats = _bucket_stats(probs, labels, times)
        rows = quantized([{**dict(zip(("model", "version", "calibrator_version", "bucket"), s.key, strict=True)),
                           "count": s.n, "nll_sum": s.nll_sum, "brier_sum": s.brier_sum} for s in stats],
                         ("count", "nll_sum", "brier_sum"))  # on the grid, as the writer stores them
        session.execute(insert(CalibrationTotals), rows)
        for span in (3600, 86400):
            hours: dict[datetime, dict[str, object]] = {}
            for r in rows:
                b = bucket_start(r["bucket"], span)  # type: ignore[arg-type]
                h = hours.setdefault(b, {**r, "bucket": b, "span": span, "count": 0.0, "nll_sum": 0.0,
                                         "brier_sum": 0.0})
                for c in ("count", "nll_sum", "brier_sum"):
                    h[c] = float(h[c]) + float(r[c])  # type: ignore[arg-type]
            session.execute(insert(CalibrationTotalsRollup), list(hours.values()))
        session.commit()
    upgrade(database_url)
    t = CalibrationTotalsRollup
    with Session(engine) as session:
        for span in (600, 21600, 604800):
            got = dict(session.execute(select(t.bucket, t.count).where(t.span == span)).all())
            want: dict[datetime, float] = {}
            for s in stats:
                want[bucket_start(s.key[3], span)] = want.get(bucket_start(s.key[3], span), 0.0) + s.n
            assert {bucket_start(b, 1): n for b, n in got.items()} == want, span
        for start, end in _windows(rng):
            kw = {"model": "digits", "version": 1, "calibrator_version": 1, "start": start, "end": end}
            assert _canonical(read_window(session, **kw)) == _canonical(read_window(session, rollups=False, **kw))
    downgrade(database_url, "0006")
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(t).where(t.span.in_((600, 21600, 604800)))) == 0
        assert session.scalar(select(func.count()).select_from(t).where(t.span == 3600)) > 0
    upgrade(database_url)
    engine.dispose()
