"""Window query latency: the calibration report on 10,000 vs 1,000,000 stored labelled predictions, and a
30-day window over 10,000,000 (``--long``), read from the hour/day roll-ups vs the fine buckets.

The claim under test (DESIGN.md §5): a window query costs O(window buckets × bins), independent of how
many rows are stored, and with roll-ups O(log): ≤ 2×59 minute + 2×23 hour buckets + one per day. Labels
arrive at a fixed rate (default 100,000/day, ~70 per one-minute bucket; ``--long``: 10M over 30 days,
~230 a minute). The state tables and their roll-ups are filled directly (numpy → COPY / executemany, sums
on the service's 2^-b grid), as the feedback path would have left them for calibrated digits-model
predictions (label coverage 50%).

Measured in-process, per database: ``read_window`` over the fine buckets only (the baseline: what every
window cost before roll-ups), ``read_window`` with roll-ups (and a check that both answers are identical),
and the whole ``GET …/calibration`` handler (``calibration_report``: window read, reference windows,
bootstrap CIs, drift checks, label-free shift).

    python -m bench.window_query [--repeats 30] [--sizes 10000 1000000] [--databases postgresql sqlite]
    python -m bench.window_query --long [--repeats 10]     # 30-day window over 10M labels
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, update

from service.calibration import streaming
from service.calibration.binned import bin_index
from service.db.rollups import QUANTUM_BITS, ROLLUPS
from service.db.stats import read_window
from service.db.tables import (
    CalibrationBin,
    CalibrationClassBin,
    CalibrationTotals,
    Calibrator,
    PredictionConfidenceBin,
    PredictionCount,
)

CLASS_BINS = 15
DAY_MINUTES = 1440
BASE = ("digits", 1, 1)
Rows = list[tuple[Any, tuple[str, ...], list[tuple[Any, ...]]]]  # (table, columns, rows)


def grid(x: np.ndarray, column: str) -> np.ndarray:
    """The service's 2^-b grid (service.db.stats.QUANTUM_BITS): sums of such values add exactly."""
    bits = QUANTUM_BITS[column]
    return np.ldexp(np.rint(np.ldexp(x, bits)), -bits)


def day_arrays(n: int, minutes: int, pool: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-minute sums for n calibrated labels spread over ``minutes`` buckets, as dense arrays."""
    bucket = rng.integers(0, minutes, size=n)
    p = pool[rng.integers(0, len(pool), size=n)]
    y = np.minimum((p.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1), p.shape[1] - 1)  # calibrated labels
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    key = bucket * streaming.FINE_BINS + streaming.fine_bin_index(conf)
    size = minutes * streaming.FINE_BINS
    k = p.shape[1]
    cell = ((bucket[:, None] * k + np.arange(k)) * CLASS_BINS + bin_index(p, CLASS_BINS)).ravel()
    onehot = np.zeros_like(p)
    onehot[np.arange(n), y] = 1.0
    c_size = minutes * k * CLASS_BINS
    p_y = p[np.arange(n), y]
    shape, c_shape = (minutes, streaming.FINE_BINS), (minutes, k, CLASS_BINS)
    return {
        "f_n": np.bincount(key, minlength=size).reshape(shape).astype(float),
        "f_s": np.bincount(key, conf, size).reshape(shape),
        "f_a": np.bincount(key, (pred == y).astype(float), size).reshape(shape),
        "c_n": np.bincount(cell, minlength=c_size).reshape(c_shape).astype(float),
        "c_p": np.bincount(cell, p.ravel(), c_size).reshape(c_shape),
        "c_l": np.bincount(cell, onehot.ravel(), c_size).reshape(c_shape),
        "t_n": np.bincount(bucket, minlength=minutes).astype(float),
        "t_nll": np.bincount(bucket, -np.log(np.maximum(p_y, 1e-12)), minutes),
        "t_brier": np.bincount(bucket, (p * p).sum(axis=1) - 2 * p_y + 1, minutes),
    }


def level_rows(a: dict[str, np.ndarray], times: list[datetime], span: int | None) -> Rows:
    """Rows of the five state tables (span None) or of their roll-ups: the per-minute arrays summed over
    groups of ``span`` seconds (exact: every value is on the grid)."""
    group = 1 if span is None else span // 60
    g = {name: x.reshape(-1, group, *x.shape[1:]).sum(axis=1) for name, x in a.items()}
    starts = times[::group]
    key: tuple[Any, ...] = BASE if span is None else (*BASE, span)
    cols = ("model", "version", "calibrator_version") + (() if span is None else ("span",)) + ("bucket",)
    fine_b, fine_m = np.nonzero(g["f_n"])
    fine = [(*key, starts[b], int(m), g["f_n"][b, m], g["f_s"][b, m], g["f_a"][b, m])
            for b, m in zip(fine_b.tolist(), fine_m.tolist(), strict=True)]
    # every second prediction got a label: the confidence histogram of all predictions is twice this one
    conf = [(*key, starts[b], int(m), 2.0 * g["f_n"][b, m], 2.0 * g["f_s"][b, m])
            for b, m in zip(fine_b.tolist(), fine_m.tolist(), strict=True)]
    cb, cc, cm = np.nonzero(g["c_n"])
    classes = [(*key, starts[b], c, m, g["c_n"][b, c, m], g["c_p"][b, c, m], g["c_l"][b, c, m])
               for b, c, m in zip(cb.tolist(), cc.tolist(), cm.tolist(), strict=True)]
    tb = np.flatnonzero(g["t_n"]).tolist()
    totals = [(*key, starts[b], g["t_n"][b], g["t_nll"][b], g["t_brier"][b]) for b in tb]
    counts = [(*key, starts[b], 2.0 * g["t_n"][b]) for b in tb]
    tables: list[tuple[Any, tuple[str, ...], list[tuple[Any, ...]]]] = [
        (CalibrationBin, (*cols, "bin", "count", "confidence_sum", "correct_sum"), fine),
        (PredictionConfidenceBin, (*cols, "bin", "count", "confidence_sum"), conf),
        (CalibrationClassBin, (*cols, "class_index", "bin", "count", "prob_sum", "label_sum"), classes),
        (CalibrationTotals, (*cols, "count", "nll_sum", "brier_sum"), totals),
        (PredictionCount, (*cols, "count"), counts),
    ]
    return [((t if span is None else ROLLUPS[t]), c, r) for t, c, r in tables]


def state_chunks(n: int, days: float, pool: np.ndarray, end: datetime, rng: np.random.Generator
                 ) -> Iterator[Rows]:
    """Fine rows and their hour/day roll-ups, one day of history at a time (memory stays flat at 10M)."""
    minutes = int(round(days * DAY_MINUTES))
    start = end - timedelta(minutes=minutes)
    first = start - timedelta(minutes=start.hour * 60 + start.minute)  # whole days, so roll-ups align
    lead = int((start - first).total_seconds() // 60)
    total = lead + minutes
    span_days = -(-total // DAY_MINUTES)
    per_minute = n / minutes
    for d in range(span_days):
        lo, hi = d * DAY_MINUTES, min((d + 1) * DAY_MINUTES, total)
        live_lo = max(lo, lead)
        if hi <= live_lo:
            continue
        m = int(round(per_minute * (hi - live_lo)))
        a = day_arrays(m, hi - live_lo, pool, rng)  # labels only in [start, end), zero-padded to the day
        a = {k: np.concatenate([np.zeros((live_lo - lo, *v.shape[1:])), v,
                                np.zeros((DAY_MINUTES - (hi - lo), *v.shape[1:]))]) for k, v in a.items()}
        for name, column in (("f_s", "confidence_sum"), ("c_p", "prob_sum"), ("t_nll", "nll_sum"),
                             ("t_brier", "brier_sum")):
            a[name] = grid(a[name], column)
        times = [first + timedelta(minutes=lo + i) for i in range(DAY_MINUTES)]
        yield [part for span in (None, 3600, 86400) for part in level_rows(a, times, span)]


def load(engine: Engine, chunks: Iterator[Rows]) -> tuple[int, int]:
    """Bulk-load (PostgreSQL: COPY; SQLite: executemany); returns (fine rows, roll-up rows)."""
    fine = rolled = 0
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for chunk in chunks:
            for table, cols, rows in chunk:
                if not rows:
                    continue
                name = table.__tablename__
                if engine.dialect.name == "postgresql":
                    with cur.copy(f"COPY {name} ({', '.join(cols)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                        for r in rows:
                            copy.write_row(r)
                else:  # SQLAlchemy's SQLite datetime storage format
                    text_rows = [tuple(v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime) else v
                                       for v in r) for r in rows]
                    cur.executemany(f"INSERT INTO {name} ({', '.join(cols)}) VALUES "
                                    f"({', '.join('?' * len(cols))})", text_rows)
                if name.endswith("_rollup"):
                    rolled += len(rows)
                else:
                    fine += len(rows)
            raw.commit()
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return fine, rolled


def timed(fn: Any, repeats: int) -> tuple[float, float]:
    """(median, p90) milliseconds after one warm-up call."""
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    samples.sort()
    return statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]


def canonical(rows: Any) -> tuple[Any, ...]:
    """The sums of a window in a fixed order (SQL returns groups in any order)."""
    return (sorted(rows.fine), sorted(rows.classes), rows.n, rows.nll_sum, rows.brier_sum, rows.predicted,
            sorted(rows.confidence))


WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "30d": timedelta(days=30)}


def run(url: str, model_dir: Path, n: int, days: float, windows: list[str], pool: np.ndarray, repeats: int
        ) -> list[dict[str, Any]]:
    from service.app import build_services
    from service.db.migrate import upgrade
    from service.db.stats import bucket_start
    from service.handlers.calibration_window import CalibrationParams, calibration_report
    from service.settings import Settings

    upgrade(url)
    services = build_services(Settings(database_url=url, model_repository=model_dir.parent.parent))
    services.registry.load_all()  # inserts calibrator 1, active
    end = bucket_start(datetime.now(UTC), 60) + timedelta(minutes=1)
    with services.engine.begin() as conn:  # activated when the history starts: reference = its first windows
        conn.execute(update(Calibrator).values(activated_at=end - timedelta(days=days)))
    t0 = time.perf_counter()
    stored, rolled = load(services.engine, state_chunks(n, days, pool, end, np.random.default_rng(n)))
    load_s = time.perf_counter() - t0
    out = []
    for window in windows:
        now = datetime.now(UTC)
        start = now - WINDOWS[window]
        kw = {"model": "digits", "version": 1, "calibrator_version": 1, "start": start, "end": now}
        with services.sessions() as session:
            fine_rows, rolled_rows = read_window(session, rollups=False, **kw), read_window(session, **kw)
        same = canonical(fine_rows) == canonical(rolled_rows)

        def fine(kw: dict[str, Any] = kw) -> None:
            with services.sessions() as session:
                read_window(session, rollups=False, **kw)

        def bare(kw: dict[str, Any] = kw) -> None:
            with services.sessions() as session:
                read_window(session, **kw)

        def full(window: str = window) -> None:
            calibration_report(services, "digits", "1", CalibrationParams(window=window))

        out.append({"window": window, "labelled": int(fine_rows.n), "fine": timed(fine, repeats),
                    "bare": timed(bare, repeats), "full": timed(full, repeats), "stored": stored,
                    "rolled": rolled, "load_s": load_s, "same": same})
    services.engine.dispose()
    return out


def main(argv: list[str] | None = None) -> None:
    from bench.drift_simulation import ensure_model, load_model
    from bench.feedback_ingest import drop_database, fresh_database

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--databases", nargs="+", default=["postgresql", "sqlite"])
    parser.add_argument("--model-dir", type=Path, default=Path("models/digits/1"))
    parser.add_argument("--long", action="store_true", help="10M labels over 30 days; windows 1h, 24h, 30d")
    args = parser.parse_args(argv)
    sizes = [10_000_000] if args.long else args.sizes
    windows = ["1h", "24h", "30d"] if args.long else ["1h", "24h"]
    model_dir = ensure_model(args.model_dir)
    logits, predict = load_model(model_dir)
    pool = predict(logits)
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for db in args.databases:
        for n in sizes:
            days = 30.0 if args.long else n / 100_000
            print(f"{db}: {n:,} labelled predictions over {days:g} days …", flush=True)
            if db == "postgresql":
                url, name = fresh_database()
                try:
                    results[(db, n)] = run(url, model_dir, n, days, windows, pool, args.repeats)
                finally:
                    drop_database(name)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    results[(db, n)] = run(f"sqlite:///{tmp}/window.db", model_dir, n, days, windows, pool,
                                           args.repeats)

    print(f"\nmilliseconds, median (p90) of {args.repeats} in-process calls; 'fine' = read_window over the "
          f"60 s buckets only (the baseline), 'rolled' = read_window from hour/day roll-ups, 'report' = the whole "
          f"calibration handler; speed-up = fine / rolled; same = identical sums")
    header = (f"{'database':10s} {'labels':>11s} {'fine rows':>10s} {'rollups':>8s} {'window':>6s} "
              f"{'in window':>10s} {'fine ms':>14s} {'rolled ms':>14s} {'speed-up':>8s} {'report ms':>14s} same")
    print(header + "\n" + "-" * len(header))
    for (db, n), rows in results.items():
        for r in rows:
            print(f"{db:10s} {n:>11,} {r['stored']:>10,} {r['rolled']:>8,} {r['window']:>6s} {r['labelled']:>10,} "
                  f"{r['fine'][0]:>7.1f} ({r['fine'][1]:>4.1f}) {r['bare'][0]:>7.1f} ({r['bare'][1]:>4.1f}) "
                  f"{r['fine'][0] / r['bare'][0]:>8.1f} {r['full'][0]:>7.1f} ({r['full'][1]:>4.1f}) "
                  f"{'yes' if r['same'] else 'NO'}")
    for db in args.databases:
        for n in sizes:
            for r in results[(db, n)]:
                if r["window"] in ("1h", "30d"):
                    ok = r["full"][0] <= 20 and r["same"]
                    print(f"{db}: {r['window']} window over {n:,} labels, report ≤ 20 ms and equal to the fine "
                          f"answer: {'PASS' if ok else 'FAIL'} ({r['full'][0]:.1f} ms)")


if __name__ == "__main__":
    main()
