"""Ground-truth labels for earlier predictions: never lost, idempotent, folded into calibration state.

Per item: ``accepted`` (committed before the response), ``duplicate`` (same label already stored: a
retried batch changes nothing), ``conflict`` (a different label was stored first and is kept),
``unknown`` (no such prediction — retryable: it may not be flushed yet on another replica) or
``invalid`` (malformed id, label not among the model's classes).
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import DateTime, Integer, String, Table, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.calibration import streaming
from service.db.stats import BucketStats, add_bucket_stats, as_utc, bucket_start
from service.db.tables import Feedback, Prediction
from service.errors import InvalidInput, PayloadTooLarge
from service.handlers.services import Services


@dataclass
class ItemResult:
    prediction_id: str
    status: str
    label: int | None = None
    detail: str | None = None
    stored_label: int | None = None


@dataclass
class _Known:
    id: str
    model: str
    version: int
    calibrator_version: int
    created_at: datetime
    probabilities: np.ndarray


def submit_feedback(services: Services, items: list[tuple[Any, Any]]) -> list[ItemResult]:
    if not items:
        raise InvalidInput("items must hold at least one {prediction_id, label}")
    limit = services.settings.max_feedback_items
    if len(items) > limit:
        raise PayloadTooLarge(f"a feedback batch holds at most {limit} items, got {len(items)}")
    results: list[ItemResult | None] = [None] * len(items)
    wanted: dict[str, list[int]] = defaultdict(list)
    for i, (pid, _label) in enumerate(items):
        if not isinstance(pid, str) or not _is_uuid(pid):
            results[i] = ItemResult(str(pid), "invalid", detail="prediction_id is not a UUID")
        else:
            wanted[pid].append(i)

    known = _lookup(services, list(wanted))
    missing = [pid for pid in wanted if pid not in known]
    if missing:  # the label may have overtaken its prediction row: flush our writer, wait once for others'
        services.writer.flush()
        known.update(_lookup(services, missing))
        missing = [pid for pid in missing if pid not in known]
        if missing and services.settings.log_flush_seconds > 0:
            time.sleep(min(services.settings.log_flush_seconds * 4, 1.0))
            known.update(_lookup(services, missing))

    to_insert: dict[str, int] = {}
    for pid, positions in wanted.items():
        row = known.get(pid)
        for i in positions:
            if row is None:
                results[i] = ItemResult(pid, "unknown", detail="no prediction with this id (yet); retry later")
                continue
            label, error = _label_index(services, row, items[i][1])
            if error is not None:
                results[i] = ItemResult(pid, "invalid", detail=error)
            elif pid not in to_insert:
                to_insert[pid] = label
                results[i] = ItemResult(pid, "pending", label=label)
            else:  # repeated inside the batch: judged against the first occurrence
                first = to_insert[pid]
                results[i] = (ItemResult(pid, "duplicate", label=label) if first == label else
                              ItemResult(pid, "conflict", label=label, stored_label=first,
                                         detail="a different label was given first; the first is kept"))

    existing = _store(services, to_insert, known)
    for r in results:
        assert r is not None
        if r.status == "pending":
            stored = existing.get(r.prediction_id)
            if stored is None:
                r.status = "accepted"
            elif stored == r.label:
                r.status = "duplicate"
            else:
                r.status, r.stored_label = "conflict", stored
                r.detail = "a different label was stored first; the first is kept"
        model = known[r.prediction_id].model if r.prediction_id in known else "unknown"
        services.metrics.feedback.labels(model, r.status).inc()
    new = [p for p in to_insert if p not in existing]
    _count_bins(services, [known[p] for p in new], [to_insert[p] for p in new])
    return [r for r in results if r is not None]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _lookup(services: Services, ids: list[str]) -> dict[str, _Known]:
    if not ids:
        return {}
    out: dict[str, _Known] = {}
    with services.sessions() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        for start in range(0, len(ids), 1000):
            chunk = ids[start:start + 1000]
            # PostgreSQL: one array parameter (= ANY) instead of 1,000 expanded IN parameters
            match = (Prediction.id == any_(bindparam("ids", chunk, type_=postgresql.ARRAY(String))) if postgres
                     else Prediction.id.in_(chunk))
            rows = session.execute(
                select(Prediction.id, Prediction.model, Prediction.version, Prediction.calibrator_version,
                       Prediction.created_at, Prediction.probabilities).where(match)
            )
            for pid, model, version, cv, created, probs in rows:
                out[pid] = _Known(pid, model, version, cv, as_utc(created), np.frombuffer(probs, dtype="<f4"))
    return out


def _label_index(services: Services, row: _Known, label: Any) -> tuple[int, str | None]:
    n_classes = len(row.probabilities)
    if isinstance(label, bool) or label is None:
        return -1, "label must be a class index or a class name"
    if isinstance(label, int):
        if 0 <= label < n_classes:
            return label, None
        return -1, f"label {label} is out of range: the model has {n_classes} classes"
    if isinstance(label, str):
        entry = services.registry.models.get(row.model)
        loaded = entry.versions.get(row.version) if entry else None
        classes = loaded.card.classes if loaded else []
        if label in classes:
            return classes.index(label), None
        if label.isdigit() and int(label) < n_classes and not classes:
            return int(label), None
        return -1, f"label '{label}' is not one of the model's classes {classes}"
    return -1, "label must be a class index or a class name"


def _store(services: Services, labels: dict[str, int], known: dict[str, _Known]) -> dict[str, int]:
    """Insert new feedback and the calibration statistics in ONE transaction.

    Returns the labels already stored for ids that were not newly inserted (duplicates/conflicts)."""
    if not labels:
        return {}
    now = datetime.now(UTC)
    with services.sessions() as session:
        inserted = _insert_new(session, [{"prediction_id": p, "label": lab, "received_at": now}
                                         for p, lab in labels.items()])
        existing_ids = [p for p in labels if p not in inserted]
        existing: dict[str, int] = {}
        if existing_ids:
            existing = dict(session.execute(
                select(Feedback.prediction_id, Feedback.label).where(Feedback.prediction_id.in_(existing_ids))
            ).all())
        new = [p for p in labels if p in inserted]
        add_bucket_stats(session, _bucket_stats(services, [known[p] for p in new], [labels[p] for p in new]))
        session.commit()
    return existing


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert, skipping ids that already have feedback; returns the ids actually inserted."""
    table = cast(Table, Feedback.__table__)
    if session.get_bind().dialect.name == "postgresql":
        # one statement, three array parameters: no per-row SQL, no per-batch statement compilation
        unnest = select(
            func.unnest(bindparam("ids", type_=postgresql.ARRAY(String))),
            func.unnest(bindparam("labels", type_=postgresql.ARRAY(Integer))),
            func.unnest(bindparam("at", type_=postgresql.ARRAY(DateTime(timezone=True)))),
        )
        stmt = (postgresql.insert(table).from_select(["prediction_id", "label", "received_at"], unnest)
                .on_conflict_do_nothing(index_elements=["prediction_id"]).returning(table.c.prediction_id))
        params = {"ids": [r["prediction_id"] for r in rows], "labels": [r["label"] for r in rows],
                  "at": [r["received_at"] for r in rows]}
        return set(session.execute(stmt, params).scalars().all())
    # SQLite: Core executemany + RETURNING ("insertmanyvalues" batches rows from one cached statement)
    stmt = (sqlite.insert(table).on_conflict_do_nothing(index_elements=["prediction_id"])
            .returning(table.c.prediction_id))
    return set(session.execute(stmt, rows).scalars().all())


def _bucket_stats(services: Services, rows: list[_Known], labels: list[int]) -> list[BucketStats]:
    groups: dict[tuple[str, int, int, datetime], list[int]] = defaultdict(list)
    seconds = services.settings.bucket_seconds
    for i, r in enumerate(rows):
        groups[(r.model, r.version, r.calibrator_version, bucket_start(r.created_at, seconds))].append(i)
    out = []
    for key, idx in groups.items():
        probs = np.stack([rows[i].probabilities for i in idx]).astype(np.float64)
        y = np.asarray([labels[i] for i in idx])
        fine = streaming.BinStats.from_predictions(probs, y)
        cls = streaming.ClasswiseStats.from_predictions(probs, y, n_bins=services.settings.ece_bins)
        out.append(BucketStats(key, fine.count, fine.confidence_sum, fine.correct_sum, cls.count, cls.prob_sum,
                               cls.label_sum, float(len(idx)), float(fine.nll_sum), float(fine.brier_sum)))
    return out


def _count_bins(services: Services, rows: list[_Known], labels: list[int]) -> None:
    """Prometheus per-bin counters for the labels this process accepted (added after the commit).

    Summed per (model, version, calibrator, bin) first: one inc per series instead of three per label
    (in multiprocess mode every inc is a locked write to a memory-mapped file)."""
    if not rows:
        return
    m, n_bins = services.metrics, services.settings.ece_bins
    probs = [r.probabilities.astype(np.float64) for r in rows]
    conf = np.array([p.max() for p in probs])
    correct = np.array([float(int(p.argmax()) == y) for p, y in zip(probs, labels, strict=True)])
    coarse = streaming.fine_bin_index(conf) // (streaming.FINE_BINS // n_bins)
    sums: dict[tuple[str, str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for r, b, c, ok in zip(rows, coarse, conf, correct, strict=True):
        acc = sums[(r.model, str(r.version), str(r.calibrator_version), str(int(b)))]
        acc[0] += 1.0
        acc[1] += float(c)
        acc[2] += float(ok)
    for key, (n, conf_sum, correct_sum) in sums.items():
        m.bin_count.labels(*key).inc(n)
        m.bin_confidence.labels(*key).inc(conf_sum)
        m.bin_correct.labels(*key).inc(correct_sum)
