"""Ground-truth labels for earlier predictions: never lost, idempotent, folded into calibration state.

Per item: ``accepted`` (committed before the response), ``duplicate`` (same label already stored: a
retried batch changes nothing), ``conflict`` (a different label was stored first and is kept),
``unknown`` (no such prediction yet — retryable: it may still be in another replica's log) or
``invalid`` (malformed id, label not among the model's classes).

A label for a recent prediction that another worker or replica has not shipped yet is looked up again for
up to ``recent_wait_seconds`` before it is ``unknown`` (``feedback_recent.py``).

A small request goes to the group-commit thread as it came: that thread validates every request queued
with it, looks their ids up together (a label that overtook its prediction flushes this process's writer
once, and is looked up once more), and adds the feedback rows and their per-bucket statistics in one
transaction. That is one hop from the event loop and one back: under predict load each hop costs a loop
iteration (~15–25 ms at 1,500 predictions/s on 2 cores), and a worker thread for the lookup cost two more.
A request that fails validation is answered alone; a large request is served whole in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from service.calibration import streaming
from service.db import feedback as feedback_rows
from service.db.engine import database_unreachable, read_session
from service.db.predictions import StoredPrediction, find_predictions
from service.db.stats import BucketStats, bucket_stat_upserts, execute_upserts
from service.db.writer import PredictionWriter
from service.errors import InvalidInput, PayloadTooLarge, ServiceError
from service.handlers.feedback_labels import label_index, valid_prediction_id
from service.handlers.feedback_recent import LATER, is_recent, look_again
from service.handlers.group_commit import GroupCommit
from service.handlers.shadow_scoring import ShadowScoring
from service.monitoring.bin_counters import count_bins
from service.monitoring.bucket_stats import bucket_stats
from service.monitoring.decision_feedback import add_label_stats
from service.monitoring.metrics import ServiceMetrics
from service.monitoring.slices import SliceRecorder
from service.repository.registry import Registry

SMALL_REQUEST = 100  # items; smaller requests share a transaction with their concurrent peers


@dataclass
class ItemResult:
    prediction_id: str
    status: str
    label: int | None = None
    detail: str | None = None
    stored_label: int | None = None


@dataclass
class Submitted:
    """One request's (prediction id, label) pairs; ``may_wait``: a recent id not found yet is judged ``LATER``."""

    items: list[tuple[Any, Any]]
    may_wait: bool = False


@dataclass
class Checked:
    """One request after validation: which positions name which (well-formed) prediction id."""

    items: list[tuple[Any, Any]]
    results: list[ItemResult | None]  # set for the items already judged (malformed ids)
    wanted: dict[str, list[int]]
    may_wait: bool = False


@dataclass
class Prepared:
    """One request, validated and looked up: what its commit must insert."""

    results: list[ItemResult]
    labels: dict[str, int] = field(default_factory=dict)  # first label per new id, in request order
    known: dict[str, StoredPrediction] = field(default_factory=dict)


class FeedbackIngest:
    def __init__(self, *, sessions: sessionmaker[Session], registry: Registry, writer: PredictionWriter,
                 metrics: ServiceMetrics, max_items: int, bucket_seconds: int, counter_bins: int,
                 slices: SliceRecorder | None = None, shadows: ShadowScoring | None = None,
                 recent_wait_seconds: float = 0.0) -> None:
        self.sessions = sessions
        self.recent_wait_seconds = recent_wait_seconds
        self.registry = registry
        self.writer = writer
        self.metrics = metrics
        self.max_items = max_items
        self.bucket_seconds = bucket_seconds
        self.counter_bins = counter_bins
        self.slices = slices or SliceRecorder(keys=(), max_values=1, bucket_seconds=bucket_seconds,
                                              counter_bins=counter_bins, metrics=metrics.slices)
        self.shadows = shadows  # shadow calibrators scored on the same labels, in the same transaction
        self._group: GroupCommit[Submitted, list[ItemResult]] = GroupCommit(
            self._serve_group, max_group=64, name="feedback-commit", shared=database_unreachable)

    def start(self) -> None:
        self._group.start()

    def stop(self) -> None:
        self._group.stop()

    async def submit(self, items: list[tuple[Any, Any]]) -> list[ItemResult]:
        """Per-item statuses, each ``accepted`` item committed before this returns."""
        results = await self._once(Submitted(items, may_wait=self.recent_wait_seconds > 0))

        async def judge(again: list[tuple[Any, Any]], may_wait: bool) -> list[ItemResult]:
            return await self._once(Submitted(again, may_wait))

        return await look_again(results, items, self.recent_wait_seconds, judge)

    def submit_sync(self, items: list[tuple[Any, Any]]) -> list[ItemResult]:
        """The same in the calling thread (in-process benchmarks; tests of the transaction itself), without the
        wait for recent ids."""
        return self._serve_alone(Submitted(items))

    async def _once(self, request: Submitted) -> list[ItemResult]:
        if len(request.items) < SMALL_REQUEST:
            return await _wait(self._group.submit(request))
        return await asyncio.to_thread(self._serve_alone, request)  # a large request: its own transaction

    def _serve_alone(self, request: Submitted) -> list[ItemResult]:
        (outcome,) = self._serve_group([request])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    # ---- validate, look up and judge: for the requests of one group together ----------------------
    def _serve_group(self, requests: Sequence[Submitted]) -> list[list[ItemResult] | BaseException]:
        checked: list[Checked | ServiceError] = []
        for request in requests:
            try:
                checked.append(self._check(request.items, request.may_wait))
            except ServiceError as exc:  # this request's own answer (400, 413): the others go on
                checked.append(exc)
        known = self._find([pid for c in checked if isinstance(c, Checked) for pid in c.wanted])
        prepared = [c if isinstance(c, ServiceError) else self._judge_all(c, known) for c in checked]
        to_commit = [p for p in prepared if isinstance(p, Prepared) and p.labels]
        stored = iter(self._commit(to_commit) if to_commit else [])
        return [p if isinstance(p, ServiceError) else self._settle(p, next(stored) if p.labels else {})
                for p in prepared]

    def _check(self, items: list[tuple[Any, Any]], may_wait: bool = False) -> Checked:
        if not items:
            raise InvalidInput("items must hold at least one {prediction_id, label}")
        if len(items) > self.max_items:
            raise PayloadTooLarge(f"a feedback batch holds at most {self.max_items} items, got {len(items)}")
        checked = Checked(items, [None] * len(items), defaultdict(list), may_wait)
        for i, (pid, _label) in enumerate(items):
            if valid_prediction_id(pid):
                checked.wanted[pid].append(i)
            else:
                checked.results[i] = ItemResult(str(pid)[:64], "invalid", detail="prediction_id is not a UUID")
        return checked

    def _find(self, ids: list[str]) -> dict[str, StoredPrediction]:
        known = self._lookup(list(dict.fromkeys(ids)))
        missing = [pid for pid in dict.fromkeys(ids) if pid not in known]
        if missing:  # the label may have overtaken its prediction row: flush our writer, look once more
            # (not past a failed shipping round: the whole group waits here, and those ids are then `unknown`,
            # which a client retries)
            self.writer.flush(until_outage=True)
            known.update(self._lookup(missing))
        return known

    def _judge_all(self, checked: Checked, known: dict[str, StoredPrediction]) -> Prepared:
        prepared = Prepared([], {}, known)
        results = checked.results
        now = time.time()
        for pid, positions in checked.wanted.items():
            row = known.get(pid)
            later = row is None and checked.may_wait and is_recent(pid, self.recent_wait_seconds, now)
            for i in positions:
                if later:
                    results[i] = ItemResult(pid, LATER)
                else:
                    results[i] = self._judge(prepared, pid, row, checked.items[i][1])
        prepared.results = [r for r in results if r is not None]
        return prepared

    def _lookup(self, ids: list[str]) -> dict[str, StoredPrediction]:
        if not ids:
            return {}
        with read_session(self.sessions) as session:
            return find_predictions(session=session, ids=ids)

    def _judge(self, prepared: Prepared, pid: str, row: StoredPrediction | None, label: Any) -> ItemResult:
        if row is None:
            return ItemResult(pid, "unknown", detail="no prediction with this id (yet); retry later")
        index, error = label_index(label, len(row.probabilities), self._classes(row))
        if error is not None:
            return ItemResult(pid, "invalid", detail=error)
        first = prepared.labels.get(pid)
        if first is None:
            prepared.labels[pid] = index
            return ItemResult(pid, "pending", label=index)
        if first == index:  # repeated inside the request: judged against the first occurrence
            return ItemResult(pid, "duplicate", label=index)
        return ItemResult(pid, "conflict", label=index, stored_label=first,
                          detail="a different label was given first; the first is kept")

    def _classes(self, row: StoredPrediction) -> list[str]:
        entry = self.registry.models.get(row.model)
        loaded = entry.versions.get(row.version) if entry else None
        return loaded.card.classes if loaded else []

    # ---- one transaction for one or several requests ----------------------------------------------
    def _commit(self, group: Sequence[Prepared]) -> list[dict[str, int]]:
        """Insert every request's new labels and their statistics; per request, the labels that were
        already stored (by an earlier transaction or an earlier request in this group)."""
        merged: dict[str, int] = {}
        rows: dict[str, StoredPrediction] = {}
        for p in group:
            for pid, label in p.labels.items():
                merged.setdefault(pid, label)  # arrival order: the earlier request's label is first
                rows[pid] = p.known[pid]
        # the statistics as if every label were new (the usual case), computed before the transaction: on SQLite
        # the write lock is held from the first statement to the commit, and every other writer waits for it
        stats = bucket_stats([rows[p] for p in merged], list(merged.values()), self.bucket_seconds,
                             self.counter_bins)
        upserts = bucket_stat_upserts(stats)
        with self.sessions() as session:
            inserted = feedback_rows.insert_new_labels(session=session, labels=merged, received_at=datetime.now(UTC))
            before = feedback_rows.stored_labels(session=session, ids=[p for p in merged if p not in inserted])
            new = [pid for pid in merged if pid in inserted]
            if len(new) < len(merged):  # duplicates or conflicts: only the new labels count
                stats = bucket_stats([rows[p] for p in new], [merged[p] for p in new], self.bucket_seconds,
                                     self.counter_bins)
                upserts = bucket_stat_upserts(stats)
            execute_upserts(session, upserts)
            served = add_label_stats(session, [rows[p] for p in new], [merged[p] for p in new], self.bucket_seconds)
            self.slices.record(session, [rows[p] for p in new], [merged[p] for p in new])
            policy = [] if self.shadows is None else self.shadows.score(session, [rows[p] for p in new],
                                                                        [merged[p] for p in new])
            session.commit()
        if policy and self.shadows:  # if_better_in_shadow, in its own transaction once the labels are stored
            self.shadows.promote(policy)
        self._count_bins(stats)
        self.metrics.decisions.observe_feedback(*served)
        out: list[dict[str, int]] = []
        claimed: set[str] = set()
        for p in group:
            stored = {pid: before[pid] for pid in p.labels if pid in before}
            for pid in p.labels:
                if pid in inserted and pid in claimed:  # a later request in this group: the first is stored
                    stored[pid] = merged[pid]
                claimed.add(pid)
            out.append(stored)
        return out

    def _settle(self, prepared: Prepared, stored: dict[str, int]) -> list[ItemResult]:
        for r in prepared.results:
            if r.status == "pending":
                previous = stored.get(r.prediction_id)
                if previous is None:
                    r.status = "accepted"
                elif previous == r.label:
                    r.status = "duplicate"
                else:
                    r.status, r.stored_label = "conflict", previous
                    r.detail = "a different label was stored first; the first is kept"
            if r.status == LATER:  # answered, and counted, after its second look-up
                continue
            row = prepared.known.get(r.prediction_id)
            model = row.model if row is not None and row.model in self.registry.models else "unknown"
            self.metrics.feedback.labels(model, r.status).inc()
        return prepared.results

    def _count_bins(self, stats: list[BucketStats]) -> None:
        """Prometheus per-bin counters for the labels this process committed."""
        series = (((s.key[0], str(s.key[1]), str(s.key[2])),
                   streaming.BinStats(s.fine_count, s.fine_confidence, s.fine_correct)) for s in stats)
        count_bins(self.metrics, series, self.counter_bins)


async def _wait(future: Future[list[ItemResult]]) -> list[ItemResult]:
    result: list[ItemResult] = await asyncio.wrap_future(future)
    return result
