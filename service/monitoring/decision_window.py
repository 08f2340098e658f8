"""The decisions part of the calibration window JSON: realised coverage of the served sets against their
target (Clopper–Pearson CI, one-sided alarm), mean set size, abstention rate and accuracy on accepted rows,
realised against expected cost, and the risk–coverage curve with AUARC from the window's confidence bins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from service.calibration.coverage_bounds import (
    clopper_pearson,
    conditional_coverage_floor,
    coverage_alarm,
    mondrian_coverage_floor,
    normal_interval,
    shortfall_pvalue,
)
from service.calibration.selective import grouped_auarc
from service.db.decision_stats import ConformalSums, DecisionSums

# risk–coverage points reported: accept rows whose confidence exceeds τ (fine-bin resolution, 1/300)
RISK_THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def coverage_reference(group_sizes: Sequence[int], mondrian: bool, target: float, delta: float) -> float:
    """The coverage a fitted set is held to: its δ-floor over calibration sets (coverage_bounds)."""
    if mondrian:
        return mondrian_coverage_floor(list(group_sizes), target, delta)
    return conditional_coverage_floor(int(sum(group_sizes)), target, delta)


def conformal_section(
    sums: Sequence[ConformalSums], calibrators: Mapping[int, tuple[Sequence[int], bool]], *,
    false_alarm: float, delta: float, n_min: int,
) -> list[dict[str, Any]]:
    """One entry per (conformal_version, target); ``calibrators`` maps conformal_version → (group sizes,
    mondrian). The alarm's false-alarm probability per check is at most ``false_alarm`` once the calibration
    set is given, and that set falls below the reference with probability at most ``delta``."""
    out = []
    for s in sums:
        n, covered = int(s.count), int(round(s.covered_sum))
        target = s.coverage_ppm / 1_000_000
        sizes, mondrian = calibrators.get(s.conformal_version, ((), False))
        reference = coverage_reference(sizes, mondrian, target, delta) if sizes else target
        lo, hi = clopper_pearson(covered, n)
        out.append({
            "conformal_version": s.conformal_version,
            "target_coverage": target,
            "labelled": n,
            "realised_coverage": covered / n if n else None,
            "coverage_ci": [lo, hi],
            "mean_set_size": s.set_size_sum / n if n else None,
            "reference_coverage": reference,
            "shortfall_p_value": shortfall_pvalue(covered, n, reference),
            "alarm": coverage_alarm(covered, n, reference, false_alarm=false_alarm, n_min=n_min),
            "false_alarm_rate": false_alarm,
            "calibration_delta": delta,
        })
    return out


def decision_section(sums: Sequence[DecisionSums]) -> list[dict[str, Any]]:
    """One entry per (cost_matrix_version, min_confidence): abstention, accepted accuracy, cost gap."""
    out = []
    for s in sums:
        n, abstained = int(s.count), int(round(s.abstained_sum))
        accepted, correct = n - abstained, int(round(s.accepted_correct_sum))
        costed = int(s.costed_count)
        entry: dict[str, Any] = {
            "cost_matrix_version": s.cost_matrix_version or None,
            "min_confidence": s.min_confidence_ppm / 1_000_000 if s.min_confidence_ppm else None,
            "labelled": n,
            "abstention_rate": abstained / n if n else None,
            "accepted_accuracy": correct / accepted if accepted else None,
            "accepted_accuracy_ci": list(clopper_pearson(correct, accepted)),
            "costed": costed,
        }
        if costed:
            expected, realised = s.expected_cost_sum / costed, s.realised_cost_sum / costed
            gap = realised - expected
            ci = normal_interval(gap, s.cost_gap_sq_sum / costed, costed)
            entry |= {"expected_cost": expected, "realised_cost": realised, "cost_gap": gap,
                      "cost_gap_ci": list(ci) if ci else None,
                      "cost_gap_significant": bool(ci and (ci[0] > 0 or ci[1] < 0))}
        out.append(entry)
    return out


def selective_section(count: np.ndarray, correct_sum: np.ndarray) -> dict[str, Any] | None:
    """Risk–coverage points and AUARC from the labelled fine bins (ascending in confidence, equal width)."""
    total = float(count.sum())
    if total <= 0:
        return None
    m = count.shape[0]
    points = []
    for tau in RISK_THRESHOLDS:
        keep = np.arange(m) >= int(round(tau * m))  # bin b holds confidences in (b/m, (b+1)/m]
        n_keep = float(count[keep].sum())
        points.append({"min_confidence": tau, "coverage": n_keep / total,
                       "risk": 1.0 - float(correct_sum[keep].sum()) / n_keep if n_keep else None})
    return {"risk_coverage": points, "auarc": grouped_auarc(count[::-1], correct_sum[::-1])}
