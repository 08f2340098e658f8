"""A window's sums read from the roll-up levels, with the ranges that change at most hourly memoised.

``rollup_ranges`` cuts [start, end) into ranges of six levels (fine buckets up to weeks). For a window that
ends now, the ranges below an hour move with every call; the hour, six-hour, day and week ranges change only
when start or end crosses an hour boundary, or when a label or prediction lands in them (late labels belong
to their prediction's bucket). So a read is one round trip: the sums over the moving ranges **and** the
fingerprint of the others — Σ labels, ΣNLL, ΣBrier (``calibration_totals``) and Σ predictions
(``prediction_counts``) over them, a few rows. If the fingerprint matches the process's memo the stable
sums come from memory, else a second statement reads them. Sound because every write adds a count ≥ 1 to
those tables in the same transaction as its sums (``add_bucket_stats``, ``add_prediction_counts``), and
nothing ever subtracts; the fingerprint is read before the stable sums, so a commit in between can only cause
a needless re-read.

Exact: all sums lie on the 2^-b grid (``service.db.rollups``), so stable + moving = the fine-bucket answer
bit for bit (``tests/db/test_rollups.py``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Float, func, literal, literal_column, select, union_all
from sqlalchemy.orm import Session

from service.db.rollups import rollup_ranges, sources, split_stable, union
from service.db.stats import PARTS, Scope, WindowRows, range_params, serial_plan
from service.db.tables import CalibrationTotals, PredictionCount

ALL_TAGS = (0, 1, 2, 3, 4)
LABELLED, PREDICTED = 5, 6  # fingerprint tags: Σ labels and Σ predictions over the stable ranges
CACHE_ENTRIES = 512
Sums = dict[tuple[int, int, int], list[float]]  # (tag, key 1, key 2) → up to three sums


def _fingerprint_tags(tags: tuple[int, ...]) -> tuple[int, ...]:
    return (*((LABELLED,) if any(t in (0, 1, 2) for t in tags) else ()),
            *((PREDICTED,) if any(t in (3, 4) for t in tags) else ()))


@lru_cache(maxsize=64)
def _statement(all_calibrators: bool, names: tuple[str, ...], tags: tuple[int, ...],
               fingerprint: tuple[str, ...]) -> Any:
    """Tags ``tags`` of ``PARTS`` summed over the ranges ``names`` as one UNION ALL (a tag, two keys, three
    sums per row), plus the fingerprint sums over the ranges ``fingerprint``: one round trip."""
    zero_i: Any = literal_column("0")
    zero_f: Any = literal(0.0, Float)
    parts = []
    for tag, table, keys, sums in PARTS:
        if tag not in tags or not names:
            continue
        rows = union(sources(table, (*keys, *sums), all_calibrators, names))
        group = [rows.c[k] for k in keys]
        cols = [*group, *[zero_i] * (2 - len(keys)), *[func.sum(rows.c[c]) for c in sums], *[zero_f] * (3 - len(sums))]
        parts.append(select(literal_column(str(tag)), *cols).group_by(*group))
    if fingerprint:
        for tag in _fingerprint_tags(tags):
            if tag == LABELLED:  # ΣNLL and ΣBrier too: a different history with the same counts still differs
                totals = ("count", "nll_sum", "brier_sum")
                rows = union(sources(CalibrationTotals, totals, all_calibrators, fingerprint))
                summed: list[Any] = [func.sum(rows.c[c]) for c in totals]
            else:
                rows = union(sources(PredictionCount, ("count",), all_calibrators, fingerprint))
                summed = [func.sum(rows.c["count"]), zero_f, zero_f]
            parts.append(select(literal_column(str(tag)), zero_i, zero_i, *summed))
    return parts[0] if len(parts) == 1 else union_all(*parts)


def _execute(session: Session, scope: Scope, ranges: dict[str, tuple[datetime, datetime]], names: tuple[str, ...],
             tags: tuple[int, ...], fingerprint: tuple[str, ...]) -> Sums:
    stmt = _statement(scope.calibrator_version is None, names, tags, fingerprint)
    params = range_params(scope, {k: ranges[k] for k in (*names, *fingerprint)})
    out: Sums = {}
    for tag, k1, k2, a, b, c in session.execute(stmt, params).all():
        out[(int(tag), int(k1), int(k2))] = [float(a or 0.0), float(b or 0.0), float(c or 0.0)]  # SUM of nothing
    return out


def _added(x: Sums, y: Sums) -> Sums:
    """Per key, x + y: exact on the 2^-b grid, so the order of the ranges does not matter."""
    out = {k: list(v) for k, v in x.items()}
    for k, v in y.items():
        if k in out:
            out[k] = [a + b for a, b in zip(out[k], v, strict=True)]
        else:
            out[k] = list(v)
    return out


def window_sums(session: Session, scope: Scope, start: datetime, end: datetime,
                tags: tuple[int, ...] = ALL_TAGS, *, rollups: bool = True) -> Sums:
    """The sums of ``tags`` over [start, end): the moving ranges and the stable ranges' fingerprint in one
    statement, the stable sums from the memo or a second statement (module docstring)."""
    serial_plan(session)
    if not rollups:
        return _execute(session, scope, {"m0": (start, end)}, ("m0",), tags, ())
    ranges = rollup_ranges(start, end)
    moving, stable = split_stable(tuple(ranges))
    if not stable:
        return _execute(session, scope, ranges, moving, tags, ())
    got = _execute(session, scope, ranges, moving, tags, stable)
    fingerprint = tuple(x for t in _fingerprint_tags(tags) for x in got.pop((t, 0, 0), [0.0, 0.0, 0.0]))
    key = (session.get_bind().engine.url.render_as_string(hide_password=True), scope, tags,
           tuple((n, *ranges[n]) for n in stable))
    with _lock:
        hit = _memo.get(key)
        if hit is not None:
            _memo.move_to_end(key)
    if hit is not None and hit[0] == fingerprint:
        return _added(hit[1], got)
    fixed = _execute(session, scope, ranges, stable, tags, ())
    with _lock:
        _memo[key] = (fingerprint, fixed)
        while len(_memo) > CACHE_ENTRIES:
            _memo.popitem(last=False)
    return _added(fixed, got)


def clear_memo() -> None:
    """Forget every memoised stable sum (the bench's cold reads; tests)."""
    with _lock:
        _memo.clear()


_memo: OrderedDict[tuple[Any, ...], tuple[tuple[float, ...], Sums]] = OrderedDict()
_lock = threading.Lock()


def rows_from_sums(sums: Sums) -> WindowRows:
    fine, classes, confidence = [], [], []
    n = nll = brier = predicted = 0.0
    for (tag, k1, k2), (a, b, c) in sums.items():
        if tag == 0:
            fine.append((k1, a, b, c))
        elif tag == 1:
            classes.append((k1, k2, a, b, c))
        elif tag == 2:
            n, nll, brier = a, b, c
        elif tag == 3:
            predicted = a
        elif tag == 4:
            confidence.append((k1, a, b))
    return WindowRows(fine, classes, n, nll, brier, predicted, confidence)


def read_window(
    session: Session, *, model: str, version: int, calibrator_version: int | None, start: datetime, end: datetime,
    rollups: bool = True,
) -> WindowRows:
    """Sum the buckets in [start, end) from the coarsest levels that fit (``rollup_ranges``: O(log) rows per
    bin), the stable part memoised; ``rollups=False`` reads the fine buckets only (buckets × bins). Both give
    the same sums exactly."""
    return rows_from_sums(window_sums(session, Scope(model, version, calibrator_version), start, end,
                                      rollups=rollups))


def read_labelled_bins(session: Session, scope: Scope, start: datetime, end: datetime) -> WindowRows:
    """Only the labelled fine bins of [start, end) (the confidence sequence's state): one table of five."""
    return rows_from_sums(window_sums(session, scope, start, end, (0,)))


@lru_cache(maxsize=16)
def _fingerprint(all_calibrators: bool, names: tuple[str, ...]) -> Any:
    """Σ labelled, Σ predicted and the number of state rows read, over the roll-up ranges ``names``."""
    labelled = union(sources(CalibrationTotals, ("count",), all_calibrators, names))
    predicted = union(sources(PredictionCount, ("count",), all_calibrators, names))
    return select(
        select(func.coalesce(func.sum(labelled.c.count), 0.0)).scalar_subquery(),
        select(func.coalesce(func.sum(predicted.c.count), 0.0)).scalar_subquery(),
        select(func.count()).select_from(labelled).scalar_subquery(),
    )


def totals_fingerprint(session: Session, scope: Scope, start: datetime, end: datetime) -> tuple[float, float, int]:
    """(Σ labelled, Σ predicted, state rows) in [start, end), read from the roll-ups: one round trip. Any new
    label or prediction in the range changes one of the sums."""
    serial_plan(session)
    ranges = rollup_ranges(start, end)
    stmt = _fingerprint(scope.calibrator_version is None, tuple(ranges))
    labelled, predicted, rows = session.execute(stmt, range_params(scope, ranges)).one()
    return float(labelled), float(predicted), int(rows)
