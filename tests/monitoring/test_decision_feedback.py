"""Feedback → conformal_stats / decision_stats rows: coverage and set size from the served mask, abstentions,
accuracy on accepted rows, and realised cost C[action, label] against the expected cost (hand-computed)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from service.db.decision_stats import ABSTAINED, pack_set
from service.db.tables import PredictionDecision
from service.monitoring.decision_feedback import LabelledDecision, stat_rows

T0 = datetime(2026, 12, 1, tzinfo=UTC)
COST = np.array([[0.0, 10.0, 10.0], [1.0, 0.0, 1.0], [0.5, 0.5, 0.5]])


def item(label: int, class_index: int = 0, **served: object) -> LabelledDecision:
    return LabelledDecision(model="m", version=1, calibrator_version=1, bucket=T0, n_classes=3,
                            class_index=class_index, label=label, served=PredictionDecision(**served))


def test_conformal_rows() -> None:
    items = [
        item(0, conformal_version=2, coverage_ppm=900_000, set_mask=pack_set(np.array([True, True, False]))),
        item(2, conformal_version=2, coverage_ppm=900_000, set_mask=pack_set(np.array([True, False, False]))),
        item(1, conformal_version=2, coverage_ppm=950_000, set_mask=pack_set(np.array([True, True, True]))),
    ]
    conformal, decision = stat_rows(items, {})
    assert decision == []
    by_target = {r["coverage_ppm"]: r for r in conformal}
    assert by_target[900_000] == {"model": "m", "version": 1, "calibrator_version": 1, "bucket": T0,
                                       "conformal_version": 2, "coverage_ppm": 900_000, "count": 2.0,
                                       "covered_sum": 1.0, "set_size_sum": 3.0}
    assert (by_target[950_000]["count"], by_target[950_000]["covered_sum"]) == (1.0, 1.0)


def test_decision_rows() -> None:
    items = [
        # approve (action 0), truth 1: realised 10 against expected 0.4
        item(1, class_index=0, cost_matrix_version=3, min_confidence_ppm=600_000, action=0, expected_cost=0.4),
        # review (action 2), truth 0: realised 0.5 against expected 0.5; top label correct
        item(0, class_index=0, cost_matrix_version=3, min_confidence_ppm=600_000, action=2, expected_cost=0.5),
        # abstained: counted, not costed, not in the accepted accuracy
        item(0, class_index=0, cost_matrix_version=3, min_confidence_ppm=600_000, action=ABSTAINED),
        # abstention only (no cost matrix): accepted and correct
        item(2, class_index=2, min_confidence_ppm=500_000, action=2),
    ]
    _, decision = stat_rows(items, {("m", 3): COST})
    by_key = {(r["cost_matrix_version"], r["min_confidence_ppm"]): r for r in decision}
    costed = by_key[(3, 600_000)]
    assert costed["count"] == 3 and costed["abstained_sum"] == 1 and costed["accepted_correct_sum"] == 1
    assert costed["costed_count"] == 2
    assert costed["expected_cost_sum"] == pytest.approx(0.9) and costed["realised_cost_sum"] == pytest.approx(10.5)
    assert costed["cost_gap_sq_sum"] == pytest.approx(9.6**2 + 0.0)
    plain = by_key[(0, 500_000)]
    assert [plain[k] for k in ("count", "abstained_sum", "accepted_correct_sum", "costed_count")] == [1, 0, 1, 0]
