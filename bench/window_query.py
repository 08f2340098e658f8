"""Window query latency: the calibration report for 1 h, 24 h and 30-day windows over 1M and 10M stored
labelled predictions (or ``--sizes``), read from the roll-up levels vs the fine buckets.

The claim under test (DESIGN.md §5): a window query costs O(log) of the window's length, independent of how
many rows are stored: at most 2×9 fine, 2×5 ten-minute, 2×5 hour, 2×3 six-hour and 2×6 day rows per bin and
the weeks between, and the ranges of an hour or coarser come from a per-process memo while no label lands in
them (``service.db.window_sums``). Labels arrive at a fixed rate over ``--days`` (default 30: 10M labels are
~230 per one-minute bucket). The state tables and the hour/day roll-ups are filled directly (numpy → COPY /
executemany, sums on the service's 2^-b grid) as migration 0004 would have left them for calibrated
digits-model predictions (label coverage 50%); then ``upgrade`` runs migration 0007, which back-fills the
10-minute, 6-hour and week levels (its time is printed).

Measured in-process, per database and window [end − length, end) with ``end`` the data's last minute:
``read_window`` over the fine buckets only (the baseline), ``read_window`` cold (memo cleared: the first read,
or the read after a late label) and warm, both checked identical to the fine answer (``==`` on every sum), and
the whole ``GET …/calibration`` handler (``calibration_report``: window read, reference windows, bootstrap
CIs, drift checks, the cs check since activation, decisions, label-free shift), cold and warm.

    python -m bench.window_query [--repeats 10] [--sizes 1000000 10000000] [--databases postgresql sqlite]
    python -m bench.window_query --url URL --end ISO  # time an already loaded database (no load, no drop)
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
    out: np.ndarray = np.ldexp(np.rint(np.ldexp(x, bits)), -bits)
    return out


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
    """Fine rows and their hour/day roll-ups, one day of history at a time (memory stays flat at 10M); the
    other levels are back-filled by migration 0007."""
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
        yield [part for span in (None, 3600, 86400) for part in level_rows(a, times, span)]  # what 0004 wrote


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
                    with cur.copy(f"COPY {name} ({', '.join(cols)}) FROM STDIN") as copy:
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


def backend_cpu(url: str) -> float:
    """CPU seconds so far of the PostgreSQL backends serving ``url``'s database (0 for SQLite: in-process)."""
    if not url.startswith("postgresql"):
        return 0.0
    from bench.feedback_ingest import cpu_snapshot

    return sum(v for (kind, _), v in cpu_snapshot(-1, url).items() if kind == "postgres")


def cpu_ms(fn: Any, repeats: int, url: str) -> float:
    """Mean CPU milliseconds per call, this process plus the database's backends (from /proc, 10 ms ticks
    summed over ``repeats`` calls): the cost whatever else the shared machine runs."""
    fn()
    db0, t0 = backend_cpu(url), time.process_time()
    for _ in range(repeats):
        fn()
    return ((time.process_time() - t0) + (backend_cpu(url) - db0)) * 1e3 / repeats


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


def prepare(url: str, model_dir: Path, n: int, days: float, pool: np.ndarray) -> dict[str, Any]:
    """A fresh database at 0004, loaded, then upgraded to head (0007 back-fills the new levels)."""
    from service.app import build_services
    from service.db.migrate import upgrade
    from service.db.stats import bucket_start
    from service.settings import Settings

    upgrade(url, "0004")
    services = build_services(Settings(database_url=url, model_repository=model_dir.parent.parent))
    services.registry.load_all()  # inserts calibrator 1, active
    end = bucket_start(datetime.now(UTC), 60)  # the windows end here: not in the future
    with services.engine.begin() as conn:  # activated when the history starts: reference = its first windows
        conn.execute(update(Calibrator).values(activated_at=end - timedelta(days=days)))
    t0 = time.perf_counter()
    stored, rolled = load(services.engine, state_chunks(n, days, pool, end, np.random.default_rng(n)))
    load_s = time.perf_counter() - t0
    services.engine.dispose()
    t0 = time.perf_counter()
    upgrade(url)
    migrate_s = time.perf_counter() - t0
    analyze(url)
    return {"end": end, "stored": stored, "rolled": rolled, "load_s": load_s, "migrate_s": migrate_s}


def analyze(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


def run(url: str, model_dir: Path, end: datetime, windows: list[str], repeats: int) -> list[dict[str, Any]]:
    from service.app import build_services
    from service.db.window_sums import clear_memo, read_window
    from service.handlers.calibration_window import CalibrationParams, calibration_report
    from service.settings import Settings

    services = build_services(Settings(database_url=url, model_repository=model_dir.parent.parent))
    services.registry.load_all()
    out = []
    for window in windows:
        start = end - WINDOWS[window]
        kw: dict[str, Any] = {"model": "digits", "version": 1, "calibrator_version": 1, "start": start, "end": end}
        clear_memo()
        with services.sessions() as session:
            fine_rows, cold_rows, warm_rows = (read_window(session, rollups=False, **kw), read_window(session, **kw),
                                               read_window(session, **kw))
        same = canonical(fine_rows) == canonical(cold_rows) == canonical(warm_rows)
        params = CalibrationParams(start=start.isoformat(), end=end.isoformat())

        def fine(kw: dict[str, Any] = kw) -> None:
            with services.sessions() as session:
                read_window(session, rollups=False, **kw)

        def cold(kw: dict[str, Any] = kw) -> None:
            clear_memo()
            with services.sessions() as session:
                read_window(session, **kw)

        def warm(kw: dict[str, Any] = kw) -> None:
            with services.sessions() as session:
                read_window(session, **kw)

        def report_cold(params: CalibrationParams = params) -> None:
            clear_memo()
            calibration_report(services, "digits", "1", params)

        def report_warm(params: CalibrationParams = params) -> None:
            calibration_report(services, "digits", "1", params)

        out.append({"window": window, "labelled": int(fine_rows.n), "fine": timed(fine, max(3, repeats // 3)),
                    "cold": timed(cold, repeats), "warm": timed(warm, repeats),
                    "report_cold": timed(report_cold, repeats), "report_warm": timed(report_warm, repeats),
                    "cpu_cold": cpu_ms(report_cold, repeats, url), "cpu_warm": cpu_ms(report_warm, 3 * repeats, url),
                    "same": same})
    services.engine.dispose()
    return out


def ms(t: tuple[float, float]) -> str:
    return f"{t[0]:.1f} ({t[1]:.1f})"


def main(argv: list[str] | None = None) -> None:
    import os

    from bench.drift_simulation import ensure_model
    from bench.feedback_ingest import drop_database, fresh_database

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--databases", nargs="+", default=["postgresql", "sqlite"])
    parser.add_argument("--windows", nargs="+", default=list(WINDOWS), choices=list(WINDOWS))
    parser.add_argument("--model-dir", type=Path, default=Path("models/digits/1"))
    parser.add_argument("--url", help="time this already loaded database (see --end) instead of loading one")
    parser.add_argument("--end", help="with --url: the loaded data's end (ISO 8601), the windows' end")
    args = parser.parse_args(argv)
    model_dir = ensure_model(args.model_dir)
    results: list[tuple[str, str, dict[str, Any], list[dict[str, Any]]]] = []
    if args.url:
        end = datetime.fromisoformat(args.end)
        results.append((args.url.split(":")[0], "loaded", {}, run(args.url, model_dir, end, args.windows,
                                                                   args.repeats)))
    else:
        from bench.drift_simulation import load_model

        logits, predict = load_model(model_dir)
        pool = predict(logits)
        for db in args.databases:
            for n in args.sizes:
                print(f"{db}: {n:,} labelled predictions over {args.days:g} days …", flush=True)
                if db == "postgresql":
                    url, name = fresh_database()
                    try:
                        info = prepare(url, model_dir, n, args.days, pool)
                        results.append((db, f"{n:,}", info, run(url, model_dir, info["end"], args.windows,
                                                                 args.repeats)))
                    finally:
                        drop_database(name)
                else:
                    with tempfile.TemporaryDirectory() as tmp:
                        url = f"sqlite:///{tmp}/window.db"
                        info = prepare(url, model_dir, n, args.days, pool)
                        results.append((db, f"{n:,}", info, run(url, model_dir, info["end"], args.windows,
                                                                 args.repeats)))

    print(f"\nmilliseconds, median (p90); load average {os.getloadavg()[0]:.1f}. 'fine' = read_window over the "
          f"60 s buckets only (the baseline); 'cold' = read_window with the memo cleared, 'warm' = memo kept; "
          f"'report' = the whole calibration handler; same = fine, cold and warm reads identical")
    for db, n, info, _ in results:
        if info:
            print(f"{db} {n}: {info['stored']:,} fine rows, {info['rolled']:,} hour/day rows loaded in "
                  f"{info['load_s']:.0f} s; migration 0007 back-fill {info['migrate_s']:.1f} s")
    print("\n| database | labels | window | labelled | fine | cold | warm | fine / warm | report cold | report warm "
          "| report CPU cold / warm | same |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    for db, n, _, rows in results:
        for r in rows:
            print(f"| {db} | {n} | {r['window']} | {r['labelled']:,} | {ms(r['fine'])} | {ms(r['cold'])} | "
                  f"{ms(r['warm'])} | {r['fine'][0] / r['warm'][0]:.0f}× | {ms(r['report_cold'])} | "
                  f"{ms(r['report_warm'])} | {r['cpu_cold']:.1f} / {r['cpu_warm']:.1f} | "
                  f"{'yes' if r['same'] else 'NO'} |")
    for db, n, _, rows in results:
        for r in rows:
            ok = r["report_warm"][0] <= 20 and r["same"]
            print(f"{db}: {r['window']} window over {n} labels, warm report ≤ 20 ms and equal to the fine "
                  f"answer: {'PASS' if ok else 'FAIL'} ({r['report_warm'][0]:.1f} ms wall, {r['cpu_warm']:.1f} ms CPU)")


if __name__ == "__main__":
    main()
