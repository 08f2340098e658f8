"""Slices in the database: the admitted tag values per (model, key), per-slice fine-bin statistics (with
hour/day roll-ups, ``service.db.rollups``); the rows' tags are read through ``service.db.tags``.

The bound. ``slice_values`` has slots 0…N-1 per (model, key), a primary key on the slot and a unique
constraint on the value. Admitting is ``INSERT … ON CONFLICT DO NOTHING`` into the free slots, then a fresh
read: a slot or a value another transaction took first is skipped, and the loop retries with the slots
still free. However many replicas race, a (model, key) never holds more than N values.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.db.rollups import KEY, RANGES, ROLLUPS, range_where, rollup_ranges
from service.db.stats import Scope, add_sums, range_params, serial_plan
from service.db.tables import CalibrationSliceBin, SliceValue

SLICE_KEYS = (*KEY, "slice_key", "slice_value", "bin")
SLICE_SUMS = ("count", "confidence_sum", "correct_sum")


def admitted_values(*, session: Session, model: str, slice_key: str) -> dict[str, int]:
    """value → slot of the values admitted for (model, key)."""
    rows = session.execute(select(SliceValue.slice_value, SliceValue.slot)
                           .where(SliceValue.model == model, SliceValue.slice_key == slice_key))
    return {str(v): int(s) for v, s in rows}


def admit_values(*, session: Session, model: str, slice_key: str, values: set[str], max_values: int
                 ) -> dict[str, int]:
    """Admit as many of ``values`` as there are free slots (in sorted order, so concurrent callers try
    the same slots for the same values); returns every admitted value of (model, key), value → slot."""
    table = cast(Table, SliceValue.__table__)
    module: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = module.insert(table).on_conflict_do_nothing()  # no target: a taken slot OR a taken value
    taken = admitted_values(session=session, model=model, slice_key=slice_key)
    for _ in range(max_values + 1):  # each round fills a slot or finds a value taken: it ends
        wanted = sorted(v for v in values if v not in taken)
        free = sorted(set(range(max_values)) - set(taken.values()))
        if not wanted or not free:
            break
        now = datetime.now(UTC)
        session.execute(stmt, [{"model": model, "slice_key": slice_key, "slot": slot, "slice_value": value,
                                "admitted_at": now} for slot, value in zip(free, wanted, strict=False)])
        taken = admitted_values(session=session, model=model, slice_key=slice_key)
    return taken


def add_slice_stats(session: Session, rows: list[dict[str, Any]]) -> None:
    """Add per-slice fine-bin rows (``SLICE_KEYS`` + ``SLICE_SUMS``) and their roll-ups, in the caller's
    transaction."""
    add_sums(session, CalibrationSliceBin, rows, SLICE_KEYS, SLICE_SUMS)


@dataclass
class SliceRows:
    """Per slice value: fine bins as (bin, count, Σconfidence, Σcorrect)."""

    bins: dict[str, list[tuple[int, float, float, float]]]


@lru_cache(maxsize=16)
def _slice_sums(all_calibrators: bool, names: tuple[str, ...], one_value: bool) -> Any:
    parts = []
    for name, span in RANGES:
        if name not in names:
            continue
        src = cast(Table, (CalibrationSliceBin if span is None else ROLLUPS[CalibrationSliceBin]).__table__)
        cond = [*range_where(src, all_calibrators, name, span), src.c.slice_key == bindparam("slice_key")]
        if one_value:
            cond.append(src.c.slice_value == bindparam("slice_value"))
        parts.append(select(src.c.slice_value, src.c.bin, *[src.c[s] for s in SLICE_SUMS]).where(*cond))
    rows = (parts[0] if len(parts) == 1 else parts[0].union_all(*parts[1:])).subquery()
    return (select(rows.c.slice_value, rows.c.bin, *[func.sum(rows.c[s]) for s in SLICE_SUMS])
            .group_by(rows.c.slice_value, rows.c.bin))


def read_slice_window(session: Session, *, scope: Scope, slice_key: str, slice_value: str | None,
                      start: datetime, end: datetime) -> SliceRows:
    """Per-slice sums over [start, end) for one key (and one value, if given), from the fine buckets and the
    hour/day roll-ups exactly as ``stats.read_window``: O(values × bins) rows."""
    serial_plan(session)
    ranges = rollup_ranges(start, end)
    stmt = _slice_sums(scope.calibrator_version is None, tuple(ranges), slice_value is not None)
    params = {**range_params(scope, ranges), "slice_key": slice_key}
    if slice_value is not None:
        params["slice_value"] = slice_value
    bins: dict[str, list[tuple[int, float, float, float]]] = defaultdict(list)
    for value, b, n, conf, correct in session.execute(stmt, params):
        bins[str(value)].append((int(b), float(n), float(conf), float(correct)))
    return SliceRows(dict(bins))
