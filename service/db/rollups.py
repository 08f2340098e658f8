"""Time buckets and the hour/day roll-ups of the per-bucket statistics (migration 0004).

Each per-bucket table has a ``…_rollup`` twin keyed by ``span`` (3600 or 86400 s) whose row is the sum of
the fine buckets starting in [bucket, bucket + span). ``service.db.stats.add_sums`` writes all three levels
with the same additive upsert in one transaction; a window [start, end) is then read as at most two partial
hours of fine buckets, two partial days of hour rows and the whole days between (``rollup_ranges``).

Exactness. Every non-integer sum is stored as a multiple of 2^-b (``QUANTUM_BITS``; a float32 confidence
≥ 1/16 already is one at b = 28). Sums of such numbers below 2^(53−b) are exact in float64, so addition is
associative: the upsert, SQL ``SUM`` and the roll-ups give the fine-bucket answer bit for bit, in any order.
Bounds: 2^25 ≈ 33M labels' worth of Σconfidence / Σprob / ΣBrier (≤ 2 per label) and 2^29 of ΣNLL per
window and bin; beyond them sums round as ordinary floats would.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, union_all

from service.db.tables import (
    CalibrationBin,
    CalibrationBinRollup,
    CalibrationClassBin,
    CalibrationClassBinRollup,
    CalibrationSliceBin,
    CalibrationSliceBinRollup,
    CalibrationTotals,
    CalibrationTotalsRollup,
    PredictionConfidenceBin,
    PredictionConfidenceBinRollup,
    PredictionCount,
    PredictionCountRollup,
)

KEY = ("model", "version", "calibrator_version", "bucket")
ROLLUP_KEY = ("model", "version", "calibrator_version", "span", "bucket")
HOUR, DAY = 3600, 86400
ROLLUP_SPANS = (HOUR, DAY)
ROLLUPS: dict[Any, Any] = {
    CalibrationBin: CalibrationBinRollup, CalibrationClassBin: CalibrationClassBinRollup,
    CalibrationTotals: CalibrationTotalsRollup, PredictionCount: PredictionCountRollup,
    PredictionConfidenceBin: PredictionConfidenceBinRollup, CalibrationSliceBin: CalibrationSliceBinRollup,
}
# 2^-b grid of each non-integer sum ; counts, Σcorrect and Σlabel are integers already
QUANTUM_BITS = {"confidence_sum": 28, "prob_sum": 28, "brier_sum": 28, "nll_sum": 24}

def as_utc(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def bucket_start(dt: datetime, seconds: int) -> datetime:
    ts = as_utc(dt).timestamp()
    return datetime.fromtimestamp(ts - ts % seconds, tz=UTC)


def dyadic(value: float, bits: int) -> float:
    """``value`` rounded to the nearest multiple of 2^-bits (exact: a power-of-two scaling and an integer)."""
    return math.ldexp(round(math.ldexp(value, bits)), -bits)


def quantized(rows: list[dict[str, Any]], sums: tuple[str, ...]) -> list[dict[str, Any]]:
    bits = [(s, QUANTUM_BITS[s]) for s in sums if s in QUANTUM_BITS]
    return [{**r, **{s: dyadic(float(r[s]), b) for s, b in bits}} for r in rows] if bits else rows


def rolled_up(rows: list[dict[str, Any]], keys: tuple[str, ...], sums: tuple[str, ...], span: int
              ) -> list[dict[str, Any]]:
    """The rows summed per (span-wide bucket holding their bucket's start, other keys): exact on the 2^-b grid."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    starts: dict[datetime, datetime] = {}  # a batch spans few buckets: floor each once
    names = (*ROLLUP_KEY, *keys[len(KEY):])
    for r in rows:
        start = starts.get(r["bucket"])
        if start is None:
            start = starts[r["bucket"]] = bucket_start(r["bucket"], span)
        key = tuple(start if k == "bucket" else span if k == "span" else r[k] for k in names)
        summed = out.get(key)
        if summed is not None:
            for s in sums:
                summed[s] += r[s]
        else:
            out[key] = {**r, "span": span, "bucket": start}
    return list(out.values())


# bound-parameter names of the five bucket ranges a rolled-up window reads (``rollup_ranges``)
RANGES: tuple[tuple[str, int | None], ...] = (("f1", None), ("f2", None), ("h1", HOUR), ("h2", HOUR), ("d", DAY))


def floor_to(dt: datetime, seconds: int) -> datetime:
    return bucket_start(dt, seconds)


def ceil_to(dt: datetime, seconds: int) -> datetime:
    floor = bucket_start(dt, seconds)
    return floor if floor == as_utc(dt) else datetime.fromtimestamp(floor.timestamp() + seconds, tz=UTC)


def rollup_ranges(start: datetime, end: datetime) -> dict[str, tuple[datetime, datetime]]:
    """[start, end) as fine buckets [start, h1) and [h2, end), hours [h1, d1) and [d2, h2), days [d1, d2) with
    h1/d1 the first hour/day boundary at or after start and h2/d2 the last at or before end (an empty range
    is left out). Every fine bucket whose start lies in [start, end) is counted exactly once."""
    start, end = as_utc(start), as_utc(end)
    h1, h2 = ceil_to(start, HOUR), floor_to(end, HOUR)
    if h1 >= h2:
        return {"f1": (start, end)}
    d1, d2 = ceil_to(h1, DAY), floor_to(h2, DAY)
    if d1 >= d2:
        ranges = {"f1": (start, h1), "f2": (h2, end), "h1": (h1, h2)}
    else:
        ranges = {"f1": (start, h1), "f2": (h2, end), "h1": (h1, d1), "h2": (d2, h2), "d": (d1, d2)}
    return {k: v for k, v in ranges.items() if v[0] < v[1]}  # fewer, smaller statements for aligned windows


def range_where(table: Any, all_calibrators: bool, name: str, span: int | None) -> list[Any]:
    """One scope and bucket range ``name`` (bound parameters ``{name}_lo``/``{name}_hi``) of a Core table."""
    c = table.c
    cond = [c.model == bindparam("model"), c.version == bindparam("version"),
            c.bucket >= bindparam(f"{name}_lo"), c.bucket < bindparam(f"{name}_hi")]
    if span is not None:
        cond.append(c.span == span)
    return cond if all_calibrators else [*cond, c.calibrator_version == bindparam("cv")]


def sources(table: Any, columns: tuple[str, ...], all_calibrators: bool, names: tuple[str, ...]) -> list[Any]:
    """One SELECT of ``columns`` per range in ``names``: the fine table or its roll-up at the range's span."""
    out = []
    for name, span in RANGES:
        if name in names:
            src = cast(Table, (table if span is None else ROLLUPS[table]).__table__)
            out.append(select(*[src.c[c] for c in columns]).where(*range_where(src, all_calibrators, name, span)))
    return out


def union(sources: list[Any]) -> Any:
    """The sources as one subquery (a single SELECT stays a plain one)."""
    stmt: Any = sources[0] if len(sources) == 1 else union_all(*sources)
    return stmt.subquery()
