"""From labelled predictions and what they were served to rows of ``conformal_stats`` / ``decision_stats``.

The feedback path calls :func:`stat_rows` for the newly accepted labels whose prediction has a
``prediction_decisions`` row, and adds the result in the same transaction as the labels themselves.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service.calibration.base import FloatArray
from service.db import costs as cost_rows
from service.db.decision_stats import (
    ABSTAINED,
    CONFORMAL_KEY,
    CONFORMAL_SUMS,
    DECISION_KEY,
    DECISION_SUMS,
    add_conformal_stats,
    add_decision_stats,
    find_prediction_decisions,
    unpack_set,
)
from service.db.predictions import StoredPrediction
from service.db.stats import bucket_start
from service.db.tables import PredictionDecision


@dataclass(frozen=True)
class LabelledDecision:
    """One newly labelled prediction that was served a set and/or a decision."""

    model: str
    version: int
    calibrator_version: int
    bucket: datetime  # the prediction-time bucket its calibration statistics go to
    n_classes: int
    class_index: int  # the served top label
    label: int
    served: PredictionDecision


def stat_rows(
    items: Iterable[LabelledDecision], costs: Mapping[tuple[str, int], FloatArray]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(conformal_stats rows, decision_stats rows), summed per key. ``costs`` maps (model,
    cost_matrix_version) → C (A, K) for every cost matrix the items name (all versions are kept, so a label
    arriving after the matrix changed is scored with the costs its decision was made under)."""
    conformal: dict[tuple[Any, ...], np.ndarray] = defaultdict(lambda: np.zeros(len(CONFORMAL_SUMS)))
    decision: dict[tuple[Any, ...], np.ndarray] = defaultdict(lambda: np.zeros(len(DECISION_SUMS)))
    for it in items:
        s = it.served
        key = (it.model, it.version, it.calibrator_version, it.bucket)
        if s.conformal_version is not None and s.set_mask is not None:
            members = unpack_set(s.set_mask, it.n_classes)
            conformal[(*key, s.conformal_version, s.coverage_ppm)] += (1.0, float(members[it.label]), members.sum())
        if s.cost_matrix_version is None and s.min_confidence_ppm is None:
            continue
        abstained = s.action == ABSTAINED
        costed, expected, realised = 0.0, 0.0, 0.0
        if s.cost_matrix_version is not None and not abstained and s.action is not None:
            costed = 1.0
            expected = float(s.expected_cost or 0.0)
            realised = float(costs[(it.model, s.cost_matrix_version)][s.action, it.label])
        correct = float(not abstained and it.class_index == it.label)
        decision[(*key, s.cost_matrix_version or 0, s.min_confidence_ppm or 0)] += (
            1.0, float(abstained), correct, costed, expected, realised, (realised - expected) ** 2)
    return _as_rows(conformal, CONFORMAL_KEY, CONFORMAL_SUMS), _as_rows(decision, DECISION_KEY, DECISION_SUMS)


def _as_rows(acc: Mapping[tuple[Any, ...], np.ndarray], keys: tuple[str, ...],
             sums: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{**dict(zip(keys, k, strict=True)), **dict(zip(sums, map(float, v), strict=True))} for k, v in acc.items()]


def add_label_stats(session: Session, stored: list[StoredPrediction], labels: list[int],
                    bucket_seconds: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """In the feedback transaction: score the served sets / decisions of newly labelled predictions and add
    the sums; returns the rows added (for the Prometheus counters, once the transaction commits)."""
    served = find_prediction_decisions(session=session, prediction_ids=[s.id for s in stored])
    if not served:
        return [], []
    items = [LabelledDecision(s.model, s.version, s.calibrator_version, bucket_start(s.created_at, bucket_seconds),
                              len(s.probabilities), served[s.id][1], label, served[s.id][0])
             for s, label in zip(stored, labels, strict=True) if s.id in served]
    keys = {(it.model, it.served.cost_matrix_version) for it in items if it.served.cost_matrix_version is not None}
    matrices = cost_rows.matrices_by_version(session=session, keys=keys)
    costs = {k: np.asarray(m, dtype=np.float64) for k, m in matrices.items()}
    conformal, decision = stat_rows(items, costs)
    add_conformal_stats(session=session, rows=conformal)
    add_decision_stats(session=session, rows=decision)
    return conformal, decision
