"""Time buckets and the roll-ups of the per-bucket statistics (migrations 0004 and 0007).

Each per-bucket table has a ``…_rollup`` twin keyed by ``span`` (10 minutes, 1 hour, 6 hours, 1 day, 1 week:
``ROLLUP_SPANS``) whose row is the sum of the fine buckets starting in [bucket, bucket + span).
``service.db.stats.add_sums`` writes every level with the same additive upsert in one transaction; a window
[start, end) is then read as at most 2×9 fine buckets, 2×5 ten-minute, 2×5 hour, 2×3 six-hour and 2×6 day
rows and the whole weeks between, per bin (``rollup_ranges``): O(log) of the window's length.

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
    ConformalStat,
    ConformalStatRollup,
    DecisionStat,
    DecisionStatRollup,
    PredictionConfidenceBin,
    PredictionConfidenceBinRollup,
    PredictionCount,
    PredictionCountRollup,
)

KEY = ("model", "version", "calibrator_version", "bucket")
ROLLUP_KEY = ("model", "version", "calibrator_version", "span", "bucket")
HOUR, DAY = 3600, 86400
# the levels a window is read from: fine buckets (None), then the roll-up spans (each divides the next and all
# are epoch-aligned, so a bucket of one level lies inside one bucket of every coarser level); weeks start on
# Thursdays 00:00 UTC (the epoch's weekday). 600, 21600 and 604800 came with migration 0007.
LEVELS: tuple[int | None, ...] = (None, 600, HOUR, 6 * HOUR, DAY, 7 * DAY)
ROLLUP_SPANS: tuple[int, ...] = tuple(s for s in LEVELS if s is not None)
STABLE_LEVEL = 2  # index of the hour level: ranges at or above it are memoised (``split_stable``)
# every range name ``rollup_ranges`` can return, with the span it is read at (None: the fine buckets)
RANGES: tuple[tuple[str, int | None], ...] = tuple(
    (f"{side}{j}", LEVELS[j]) for j in range(len(LEVELS)) for side in "abm" if side == "m" or j < len(LEVELS) - 1)
ROLLUPS: dict[Any, Any] = {
    CalibrationBin: CalibrationBinRollup, CalibrationClassBin: CalibrationClassBinRollup,
    CalibrationTotals: CalibrationTotalsRollup, PredictionCount: PredictionCountRollup,
    PredictionConfidenceBin: PredictionConfidenceBinRollup, CalibrationSliceBin: CalibrationSliceBinRollup,
    ConformalStat: ConformalStatRollup, DecisionStat: DecisionStatRollup,  # migration 0007
}
# 2^-b grid of each non-integer sum ; counts, Σcorrect and Σlabel are integers already
# (costs: exact below 2^33 per window and key, i.e. 10M labels at costs up to ~800 and squared gaps up to ~800)
QUANTUM_BITS = {"confidence_sum": 28, "prob_sum": 28, "brier_sum": 28, "nll_sum": 24, "expected_cost_sum": 20,
                "realised_cost_sum": 20, "cost_gap_sq_sum": 20}

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
    floors: dict[datetime, datetime] = {}  # a batch holds few distinct buckets
    names = (*ROLLUP_KEY, *keys[len(KEY):])
    for r in rows:
        b = r["bucket"]
        floor = floors.get(b)
        if floor is None:
            floor = floors[b] = bucket_start(b, span)
        row = {**r, "span": span, "bucket": floor}
        key = tuple(row[k] for k in names)
        if key in out:
            for s in sums:
                out[key][s] += row[s]
        else:
            out[key] = row
    return list(out.values())


def floor_to(dt: datetime, seconds: int) -> datetime:
    return bucket_start(dt, seconds)


def ceil_to(dt: datetime, seconds: int) -> datetime:
    floor = bucket_start(dt, seconds)
    return floor if floor == as_utc(dt) else datetime.fromtimestamp(floor.timestamp() + seconds, tz=UTC)


def level_span(name: str) -> int | None:
    """The span a range of ``rollup_ranges`` is read at: its name's digit is the level (``LEVELS``)."""
    return LEVELS[int(name[1:])]


def rollup_ranges(start: datetime, end: datetime) -> dict[str, tuple[datetime, datetime]]:
    """[start, end) as ranges, each read from one level (``LEVELS``): with a_j / b_j the first / last
    level-j boundary at or after start / at or before end (a_0 = start, b_0 = end) and t the coarsest level
    with a_t < b_t, the middle ``m{t}`` = [a_t, b_t) at level t and, for every finer level j < t, ``a{j}`` =
    [a_j, a_{j+1}) and ``b{j}`` = [b_{j+1}, b_j) at level j. Every fine bucket whose start lies in [start,
    end) is counted exactly once; a range may be empty (it is kept, so the statement set stays small: one
    per t)."""
    start, end = as_utc(start), as_utc(end)
    a = [start, *[ceil_to(start, s) for s in ROLLUP_SPANS]]
    b = [end, *[floor_to(end, s) for s in ROLLUP_SPANS]]
    top = max((i for i in range(1, len(LEVELS)) if a[i] < b[i]), default=0)
    ranges = {f"m{top}": (a[top], b[top])}
    for j in range(top):
        ranges[f"a{j}"], ranges[f"b{j}"] = (a[j], a[j + 1]), (b[j + 1], b[j])
    return ranges


def split_stable(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(volatile, stable) range names: ranges at levels finer than an hour move with every minute of a window
    ending now; the others change at most once an hour (``service.db.window_cache``)."""
    volatile = tuple(n for n in names if int(n[1:]) < STABLE_LEVEL)
    return volatile, tuple(n for n in names if int(n[1:]) >= STABLE_LEVEL)


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
    for name in names:
        span = level_span(name)
        src = cast(Table, (table if span is None else ROLLUPS[table]).__table__)
        out.append(select(*[src.c[c] for c in columns]).where(*range_where(src, all_calibrators, name, span)))
    return out


def union(sources: list[Any]) -> Any:
    """The sources as one subquery (a single SELECT stays a plain one)."""
    stmt: Any = sources[0] if len(sources) == 1 else union_all(*sources)
    return stmt.subquery()
