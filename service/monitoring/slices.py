"""Slices: calibration statistics per value of configured request-tag keys, with bounded cardinality.

``CALIBSERVE_SLICE_KEYS`` names the tag keys; per (model, key) the first ``slice_max_values`` distinct values
seen on labelled predictions get their own slice (persisted in ``slice_values``, so the bound holds across
restarts and replicas), every later value goes to ``other``.

Tag values: a string is its own value; ``true``/``false`` for booleans; a number is its JSON text (``3``,
``0.5``). ``null``, objects and arrays, and a missing key put the row in no slice of that key. An empty
string, a string over 128 characters or the literal ``other`` goes to ``other`` (never admitted: ``other``
stays one bucket, and the value fits its column and a metric label).

``SliceRecorder.record`` is the feedback transaction's hook: it reads the labelled rows' tags, admits new
values, adds the per-slice fine-bin sums (and their roll-ups) in the caller's transaction, and counts the
Prometheus per-slice bins once that transaction has committed.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from sqlalchemy import event
from sqlalchemy.orm import Session

from service.calibration import streaming
from service.db.predictions import StoredPrediction
from service.db.slices import add_slice_stats, admit_values
from service.db.stats import bucket_start
from service.db.tags import prediction_tags
from service.monitoring.bin_counters import count_bins
from service.monitoring.slice_metrics import SliceMetrics

OTHER = "other"
MAX_VALUE_CHARS = 128  # slice_values.slice_value is String(128)

SliceGroup = tuple[str, int, int, datetime, str, str]  # model, version, cv, bucket, key, value


def slice_value(value: Any) -> str | None:
    """The slice a tag value names (module docstring), before admission; None: no slice."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return OTHER if not value or len(value) > MAX_VALUE_CHARS else value
    if isinstance(value, int | float):
        return orjson.dumps(value).decode()
    return None


class SliceRecorder:
    """Per-slice statistics of committed labels; a no-op when no slice key is configured."""

    def __init__(self, *, keys: Sequence[str], max_values: int, bucket_seconds: int, counter_bins: int,
                 metrics: SliceMetrics) -> None:
        self.keys = tuple(keys)
        self.max_values = max_values
        self.bucket_seconds = bucket_seconds
        self.counter_bins = counter_bins
        self.metrics = metrics
        # admitted values per (model, key), as committed: values only ever join, so a hit is always right
        self._admitted: dict[tuple[str, str], dict[str, int]] = {}
        self._lock = threading.Lock()

    def record(self, session: Session, rows: list[StoredPrediction], labels: list[int]) -> None:
        """Add the slices' statistics of these newly labelled rows in ``session``'s transaction."""
        if not self.keys or not rows:
            return
        tags = prediction_tags(session=session, ids=[r.id for r in rows])
        if not tags:
            return
        named = self._named(rows, tags)  # row index → {key: raw slice value}
        admitted = self._admit(session, rows, named)
        groups: dict[SliceGroup, list[int]] = defaultdict(list)
        for i, values in named.items():
            r = rows[i]
            bucket = bucket_start(r.created_at, self.bucket_seconds)
            for key, value in values.items():
                kept = value if value in admitted.get((r.model, key), {}) else OTHER
                groups[(r.model, r.version, r.calibrator_version, bucket, key, kept)].append(i)
        stats = {g: streaming.BinStats.from_predictions(np.stack([rows[i].probabilities for i in idx])
                                                        .astype(np.float64), np.asarray([labels[i] for i in idx]))
                 for g, idx in groups.items()}
        add_slice_stats(session, [
            {"model": g[0], "version": g[1], "calibrator_version": g[2], "bucket": g[3], "slice_key": g[4],
             "slice_value": g[5], "bin": int(b), "count": float(s.count[b]),
             "confidence_sum": float(s.confidence_sum[b]), "correct_sum": float(s.correct_sum[b])}
            for g, s in stats.items() for b in np.flatnonzero(s.count)])
        # after the commit only: a rolled-back transaction neither counts nor admits
        event.listen(session, "after_commit", lambda _s: self._committed(admitted, stats), once=True)

    def _named(self, rows: list[StoredPrediction], tags: dict[str, dict[str, Any]]) -> dict[int, dict[str, str]]:
        out: dict[int, dict[str, str]] = {}
        for i, r in enumerate(rows):
            t = tags.get(r.id)
            if t is None:
                continue
            values = {k: v for k in self.keys if k in t and (v := slice_value(t[k])) is not None}
            if values:
                out[i] = values
        return out

    def _admit(self, session: Session, rows: list[StoredPrediction], named: dict[int, dict[str, str]]
               ) -> dict[tuple[str, str], dict[str, int]]:
        """Admitted values per (model, key) seen here; the database only when a value is new and slots are free."""
        seen: dict[tuple[str, str], set[str]] = defaultdict(set)
        for i, values in named.items():
            for key, value in values.items():
                if value != OTHER:
                    seen[(rows[i].model, key)].add(value)
        out: dict[tuple[str, str], dict[str, int]] = {}
        for (model, key), wanted in sorted(seen.items()):  # one order: no lock-order deadlock between writers
            with self._lock:
                cached = dict(self._admitted.get((model, key), {}))
            new = wanted - set(cached)
            if new and len(cached) < self.max_values:  # full: nothing new can be admitted, anywhere
                cached = admit_values(session=session, model=model, slice_key=key, values=new,
                                      max_values=self.max_values)
            out[(model, key)] = cached
        return out

    def _committed(self, admitted: dict[tuple[str, str], dict[str, int]],
                   stats: dict[SliceGroup, streaming.BinStats]) -> None:
        with self._lock:
            for mk, values in admitted.items():
                self._admitted.setdefault(mk, {}).update(values)
        count_bins(self.metrics, (((model, str(version), str(cv), key, value), s)
                                  for (model, version, cv, _bucket, key, value), s in stats.items()),
                   self.counter_bins)
