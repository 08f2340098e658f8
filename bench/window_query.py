"""Window query latency: the calibration report on 10,000 vs 1,000,000 stored labelled predictions.

The claim under test (DESIGN.md §5): a window query costs O(window buckets × bins), independent of how
many rows are stored. Labels arrive at a fixed rate (100,000/day, ~70 per one-minute bucket), so 10,000
labels are 2.4 hours of history and 1,000,000 are 10 days; the last hour holds the same amount of data in
both. The state tables are filled directly (numpy → COPY / executemany), as the feedback path would have
left them for calibrated digits-model predictions (label coverage 50%).

Measured in-process, per database: ``read_window`` (the bare summing SQL, the baseline) and the whole
``GET …/calibration`` handler (``calibration_report``: window read, 6 reference windows, bootstrap CIs,
drift checks, label-free shift), for the last 1 h (the default window) and the last 24 h.

    python -m bench.window_query [--repeats 30] [--sizes 10000 1000000] [--databases postgresql sqlite]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert, update

from service.calibration import streaming
from service.calibration.binned import bin_index
from service.db.stats import PredictionConfidenceBin, read_window
from service.db.tables import CalibrationBin, CalibrationClassBin, CalibrationTotals, Calibrator, PredictionCount

RATE_PER_MINUTE = 100_000 / 1440
CLASS_BINS = 15


def state_rows(n: int, pool: np.ndarray, end: datetime, rng: np.random.Generator) -> dict[Any, list[dict[str, Any]]]:
    """Rows of every state table for n labelled predictions at a fixed rate ending at ``end``."""
    minutes = int(np.ceil(n / RATE_PER_MINUTE))
    bucket = rng.integers(0, minutes, size=n)
    p = pool[rng.integers(0, len(pool), size=n)]
    y = np.minimum((p.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1), p.shape[1] - 1)  # calibrated labels
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    fine = streaming.fine_bin_index(conf)
    key = bucket * streaming.FINE_BINS + fine
    size = minutes * streaming.FINE_BINS
    f_n = np.bincount(key, minlength=size)
    f_s, f_a = np.bincount(key, conf, size), np.bincount(key, (pred == y).astype(float), size)
    k = p.shape[1]
    cell = ((bucket[:, None] * k + np.arange(k)) * CLASS_BINS + bin_index(p, CLASS_BINS)).ravel()
    onehot = np.zeros_like(p)
    onehot[np.arange(n), y] = 1.0
    c_size = minutes * k * CLASS_BINS
    c_n = np.bincount(cell, minlength=c_size)
    c_p, c_l = np.bincount(cell, p.ravel(), c_size), np.bincount(cell, onehot.ravel(), c_size)
    p_y = p[np.arange(n), y]
    nll = np.bincount(bucket, -np.log(np.maximum(p_y, 1e-12)), minutes)
    brier = np.bincount(bucket, (p * p).sum(axis=1) - 2 * p_y + 1, minutes)
    count = np.bincount(bucket, minlength=minutes)
    start = end - timedelta(minutes=minutes)
    times = [start + timedelta(minutes=int(b)) for b in range(minutes)]
    base = {"model": "digits", "version": 1, "calibrator_version": 1}
    rows: dict[Any, list[dict[str, Any]]] = {t: [] for t in (CalibrationBin, CalibrationClassBin, CalibrationTotals,
                                                             PredictionCount, PredictionConfidenceBin)}
    for i in np.flatnonzero(f_n):
        b, m = divmod(int(i), streaming.FINE_BINS)
        rows[CalibrationBin].append({**base, "bucket": times[b], "bin": m, "count": float(f_n[i]),
                                     "confidence_sum": float(f_s[i]), "correct_sum": float(f_a[i])})
        # every second prediction got a label: the confidence histogram of all predictions is twice this one
        rows[PredictionConfidenceBin].append({**base, "bucket": times[b], "bin": m, "count": 2.0 * f_n[i],
                                              "confidence_sum": 2.0 * float(f_s[i])})
    for i in np.flatnonzero(c_n):
        rest, m = divmod(int(i), CLASS_BINS)
        b, c = divmod(rest, k)
        rows[CalibrationClassBin].append({**base, "bucket": times[b], "class_index": c, "bin": m,
                                          "count": float(c_n[i]), "prob_sum": float(c_p[i]),
                                          "label_sum": float(c_l[i])})
    for b in np.flatnonzero(count):
        rows[CalibrationTotals].append({**base, "bucket": times[b], "count": float(count[b]),
                                        "nll_sum": float(nll[b]), "brier_sum": float(brier[b])})
        rows[PredictionCount].append({**base, "bucket": times[b], "count": 2.0 * count[b]})
    return rows


def load(engine: Engine, rows: dict[Any, list[dict[str, Any]]]) -> int:
    """Bulk-load the rows (PostgreSQL: COPY; SQLite: executemany in one transaction)."""
    total = 0
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cur:
                for table, data in rows.items():
                    cols = list(data[0])
                    with cur.copy(f"COPY {table.__tablename__} ({', '.join(cols)}) FROM STDIN") as copy:
                        for r in data:
                            copy.write_row([r[c] for c in cols])
                    total += len(data)
            raw.commit()
            cur = raw.cursor()
            cur.execute("ANALYZE")
            raw.commit()
        finally:
            raw.close()
        return total
    with engine.begin() as conn:
        for table, data in rows.items():
            for start in range(0, len(data), 50_000):
                conn.execute(insert(table), data[start:start + 50_000])
            total += len(data)
    return total


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


def run(url: str, model_dir: Path, n: int, pool: np.ndarray, repeats: int) -> list[dict[str, Any]]:
    from service.app import build_services
    from service.db.migrate import upgrade
    from service.db.stats import bucket_start
    from service.handlers.calibration_window import CalibrationParams, calibration_report
    from service.settings import Settings

    upgrade(url)
    services = build_services(Settings(database_url=url, model_repository=model_dir.parent.parent))
    services.registry.load_all()  # inserts calibrator 1, active
    end = bucket_start(datetime.now(UTC), 60) + timedelta(minutes=1)
    rows = state_rows(n, pool, end, np.random.default_rng(n))
    first = min(r["bucket"] for r in rows[CalibrationTotals])
    with services.engine.begin() as conn:  # activated when the history starts: reference = its first 6 windows
        conn.execute(update(Calibrator).values(activated_at=first))
    t0 = time.perf_counter()
    stored = load(services.engine, rows)
    load_s = time.perf_counter() - t0
    out = []
    for window in ("1h", "24h"):
        now = datetime.now(UTC)
        start = now - (timedelta(hours=1) if window == "1h" else timedelta(hours=24))
        in_window = sum(1 for table in (CalibrationBin, CalibrationClassBin) for r in rows[table]
                        if start <= r["bucket"] < now)
        labelled = sum(r["count"] for r in rows[CalibrationTotals] if start <= r["bucket"] < now)

        def bare(start: datetime = start, now: datetime = now) -> None:
            with services.sessions() as session:
                read_window(session, model="digits", version=1, calibrator_version=1, start=start, end=now)

        def full(window: str = window) -> None:
            calibration_report(services, "digits", "1", CalibrationParams(window=window))

        bare_ms = timed(bare, repeats)
        full_ms = timed(full, repeats)
        out.append({"window": window, "labelled": int(labelled), "rows": in_window, "bare": bare_ms,
                    "full": full_ms, "stored": stored, "load_s": load_s})
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
    args = parser.parse_args(argv)
    model_dir = ensure_model(args.model_dir)
    logits, predict = load_model(model_dir)
    pool = predict(logits)
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for db in args.databases:
        for n in args.sizes:
            print(f"{db}: {n:,} labelled predictions …", flush=True)
            if db == "postgresql":
                url, name = fresh_database()
                try:
                    results[(db, n)] = run(url, model_dir, n, pool, args.repeats)
                finally:
                    drop_database(name)
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    results[(db, n)] = run(f"sqlite:///{tmp}/window.db", model_dir, n, pool, args.repeats)

    small = min(args.sizes)
    print(f"\nmilliseconds, median (p90) of {args.repeats} in-process calls; ratio = median / the same query on "
          f"{small:,} stored labels; 'bare' = read_window SQL only, 'report' = the whole calibration handler")
    header = (f"{'database':10s} {'stored labels':>13s} {'state rows':>10s} {'window':>6s} {'labels in':>9s} "
              f"{'rows in':>8s} {'bare ms':>14s} {'report ms':>14s} {'ratio':>6s} {'report/bare':>11s}")
    print(header + "\n" + "-" * len(header))
    for (db, n), rows in results.items():
        for r in rows:
            ref = next(x for x in results[(db, small)] if x["window"] == r["window"])
            print(f"{db:10s} {n:>13,} {r['stored']:>10,} {r['window']:>6s} {r['labelled']:>9,} {r['rows']:>8,} "
                  f"{r['bare'][0]:>7.1f} ({r['bare'][1]:>4.1f}) {r['full'][0]:>7.1f} ({r['full'][1]:>4.1f}) "
                  f"{r['full'][0] / ref['full'][0]:>6.2f} {r['full'][0] / r['bare'][0]:>11.1f}")
    for db in args.databases:
        hour = {n: next(x for x in results[(db, n)] if x["window"] == "1h") for n in args.sizes}
        big = max(args.sizes)
        ok_latency = all(h["full"][0] <= 20 for h in hour.values())
        ratio = hour[big]["full"][0] / hour[small]["full"][0]
        latencies = ", ".join(f"{hour[n]['full'][0]:.1f} ms" for n in args.sizes)
        print(f"{db}: default window (1h) report ≤ 20 ms: {'PASS' if ok_latency else 'FAIL'} ({latencies}); "
              f"≤ 1.5× slower at {big:,} than {small:,}: {'PASS' if ratio <= 1.5 else 'FAIL'} ({ratio:.2f}×)")


if __name__ == "__main__":
    main()
