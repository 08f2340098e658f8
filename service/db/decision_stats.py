"""Served sets and decisions, and their additive per-bucket statistics from feedback (migration 0003).

``prediction_decisions`` holds what each prediction that asked for a set or a decision was served (the set as
a bit mask); ``conformal_stats`` and ``decision_stats`` add up, per prediction-time bucket, what its labels
showed. Windows merge by adding rows, as for the calibration statistics, and are read from the same roll-up
levels (migration 0007): O(log(window) × keys), never O(rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.orm import Session

from service.db.rollups import rollup_ranges, sources, union
from service.db.stats import Scope, add_sums, range_params
from service.db.tables import ConformalStat, DecisionStat, Prediction, PredictionDecision

KEY = ("model", "version", "calibrator_version", "bucket")
CONFORMAL_KEY = (*KEY, "conformal_version", "coverage_ppm")
CONFORMAL_SUMS = ("count", "covered_sum", "set_size_sum")
DECISION_KEY = (*KEY, "cost_matrix_version", "min_confidence_ppm")
DECISION_SUMS = ("count", "abstained_sum", "accepted_correct_sum", "costed_count", "expected_cost_sum",
                 "realised_cost_sum", "cost_gap_sq_sum")
ABSTAINED = -1  # prediction_decisions.action of a row that abstained
SERVED_COLUMNS = ("prediction_id", "conformal_version", "coverage_ppm", "set_mask", "cost_matrix_version",
                  "min_confidence_ppm", "action", "expected_cost")


def to_ppm(value: float) -> int:
    """A coverage or confidence threshold in parts per million (an integer key; 0.9 → 900000)."""
    return int(round(value * 1_000_000))


def pack_set(mask: np.ndarray) -> bytes:
    """One row's set membership (K,) bool → bytes (little bit order: class k is bit k % 8 of byte k // 8)."""
    return np.packbits(mask.astype(bool), bitorder="little").tobytes()


def unpack_set(data: bytes, n_classes: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little", count=n_classes)
    return bits.astype(bool)


def insert_prediction_decisions(*, session: Session | Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert served sets/decisions (dicts with PredictionDecision's columns), in the prediction rows' transaction."""
    if rows:
        session.execute(insert(PredictionDecision), list(rows))


def find_prediction_decisions(
    *, session: Session, prediction_ids: Iterable[str]
) -> dict[str, tuple[PredictionDecision, int]]:
    """prediction_id → (what it was served, its served top class) for the ids that asked for more."""
    ids = list(prediction_ids)
    out: dict[str, tuple[PredictionDecision, int]] = {}
    for start in range(0, len(ids), 1000):  # bounded IN lists
        q = (select(PredictionDecision, Prediction.class_index)
             .join(Prediction, Prediction.id == PredictionDecision.prediction_id)
             .where(PredictionDecision.prediction_id.in_(ids[start:start + 1000])))
        for row, class_index in session.execute(q):
            out[row.prediction_id] = (row, int(class_index))
    return out


def add_conformal_stats(*, session: Session | Connection, rows: Sequence[dict[str, Any]]) -> None:
    add_sums(session, ConformalStat, list(rows), CONFORMAL_KEY, CONFORMAL_SUMS)


def add_decision_stats(*, session: Session | Connection, rows: Sequence[dict[str, Any]]) -> None:
    add_sums(session, DecisionStat, list(rows), DECISION_KEY, DECISION_SUMS)


@dataclass(frozen=True)
class ConformalSums:
    conformal_version: int
    coverage_ppm: int
    count: float
    covered_sum: float
    set_size_sum: float


@dataclass(frozen=True)
class DecisionSums:
    cost_matrix_version: int
    min_confidence_ppm: int
    count: float
    abstained_sum: float
    accepted_correct_sum: float
    costed_count: float
    expected_cost_sum: float
    realised_cost_sum: float
    cost_gap_sq_sum: float


@lru_cache(maxsize=32)
def _window_statement(table: Any, group: tuple[str, ...], sums: tuple[str, ...], all_calibrators: bool,
                      names: tuple[str, ...]) -> Any:
    """Per ``group`` key, the sums over the ranges ``names`` of ``rollup_ranges`` (fine buckets and roll-ups)."""
    rows = union(sources(table, (*group, *sums), all_calibrators, names))
    keys = [rows.c[g] for g in group]
    return select(*keys, *(func.sum(rows.c[s]) for s in sums)).group_by(*keys).order_by(*keys)


def _window_rows(session: Session, table: Any, group: tuple[str, ...], sums: tuple[str, ...], model: str,
                 version: int, start: datetime, end: datetime, calibrator_version: int | None) -> list[Any]:
    """Read from the roll-up levels (O(log) rows per key, as ``service.db.window_sums``); sums are on the 2^-b
    grid, so this is the fine-bucket answer exactly."""
    ranges = rollup_ranges(start, end)
    stmt = _window_statement(table, group, sums, calibrator_version is None, tuple(ranges))
    return list(session.execute(stmt, range_params(Scope(model, version, calibrator_version), ranges)).all())


def read_conformal_window(
    *, session: Session, model: str, version: int, start: datetime, end: datetime,
    calibrator_version: int | None = None,
) -> list[ConformalSums]:
    """Sums over buckets in [start, end) per (conformal_version, coverage target)."""
    rows = _window_rows(session, ConformalStat, ("conformal_version", "coverage_ppm"), CONFORMAL_SUMS, model,
                        version, start, end, calibrator_version)
    return [ConformalSums(int(r[0]), int(r[1]), *map(float, r[2:])) for r in rows]


def read_decision_window(
    *, session: Session, model: str, version: int, start: datetime, end: datetime,
    calibrator_version: int | None = None,
) -> list[DecisionSums]:
    """Sums over buckets in [start, end) per (cost_matrix_version, abstention threshold)."""
    rows = _window_rows(session, DecisionStat, ("cost_matrix_version", "min_confidence_ppm"), DECISION_SUMS, model,
                        version, start, end, calibrator_version)
    return [DecisionSums(int(r[0]), int(r[1]), *map(float, r[2:])) for r in rows]


def served_tuples(
    prediction_ids: Sequence[str], *, set_mask: np.ndarray | None, actions: np.ndarray | None,
    expected_cost: np.ndarray | None, conformal_version: int | None, coverage: float | None,
    cost_matrix_version: int | None, min_confidence: float | None,
) -> list[tuple[Any, ...]]:
    """``prediction_decisions`` rows (``SERVED_COLUMNS`` order) for one request block; the arrays are
    ``calibration.decide.Decided``'s. Packed and converted once per block, not per row."""
    n = len(prediction_ids)
    none: list[Any] = [None] * n
    masks = none
    if set_mask is not None:
        masks = [row.tobytes() for row in np.packbits(set_mask, axis=1, bitorder="little")]
    acts = actions.tolist() if actions is not None else none
    costs = none
    if expected_cost is not None:  # NaN (abstained) → NULL
        costs = [None if c != c else c for c in expected_cost.tolist()]
    cv = conformal_version if set_mask is not None else None
    cov = to_ppm(coverage) if set_mask is not None and coverage is not None else None
    conf = to_ppm(min_confidence) if min_confidence is not None else None
    return [(pid, cv, cov, m, cost_matrix_version, conf, a, c)
            for pid, m, a, c in zip(prediction_ids, masks, acts, costs, strict=True)]


def served_rows(prediction_ids: Sequence[str], **block: Any) -> list[dict[str, Any]]:
    """The same rows as dicts (``insert_prediction_decisions``)."""
    return [dict(zip(SERVED_COLUMNS, t, strict=True)) for t in served_tuples(prediction_ids, **block)]


@dataclass(frozen=True)
class ServedBlock:
    """What one request block was served beyond probabilities, as arrays: the prediction log expands it into
    ``prediction_decisions`` rows in its writer thread, off the request path."""

    set_mask: np.ndarray | None
    actions: np.ndarray | None
    expected_cost: np.ndarray | None
    conformal_version: int | None
    coverage: float | None
    cost_matrix_version: int | None
    min_confidence: float | None

    def tuples(self, prediction_ids: Sequence[str]) -> list[tuple[Any, ...]]:
        """Rows in ``SERVED_COLUMNS`` order, for the log's bulk insert (executemany / COPY)."""
        return served_tuples(prediction_ids, set_mask=self.set_mask, actions=self.actions,
                             expected_cost=self.expected_cost, conformal_version=self.conformal_version,
                             coverage=self.coverage, cost_matrix_version=self.cost_matrix_version,
                             min_confidence=self.min_confidence)
