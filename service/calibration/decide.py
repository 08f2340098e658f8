"""Everything a request may ask beyond probabilities, in one pure call: the conformal set at a coverage, the
abstention rule, and the Bayes action under a cost matrix. The predictor calls it once per request block.

Order of the rules: abstain (top probability < ``min_confidence``) wins; otherwise the action is the Bayes
action under ``cost`` if there is one, else the top label. Sets are independent of the decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.calibration.base import FloatArray, IntArray
from service.calibration.conformal import SplitConformal
from service.calibration.decisions import abstain_mask, bayes_actions

ABSTAIN = -1  # the action index of a row that abstained


@dataclass(frozen=True)
class Decided:
    """Per-row results (n rows); a field is None when the request did not ask for it."""

    set_mask: np.ndarray | None = None  # (n, K) bool
    actions: IntArray | None = None  # (n,) action index (a cost-matrix row, or the top class), ABSTAIN
    expected_cost: FloatArray | None = None  # (n,) NaN where abstained


def decide(
    probs: FloatArray, *, conformal: SplitConformal | None = None, coverage: float | None = None,
    min_confidence: float | None = None, cost: FloatArray | None = None,
) -> Decided:
    """``probs`` (n, K) calibrated. ``coverage`` needs ``conformal``; ``cost`` is a checked (A, K) matrix."""
    set_mask = conformal.predict_set(probs, coverage) if conformal is not None and coverage is not None else None
    if min_confidence is None and cost is None:
        return Decided(set_mask)
    expected: FloatArray | None = None
    if cost is not None:
        actions, expected = bayes_actions(probs, cost)
    else:
        actions = probs.argmax(axis=1).astype(np.int64)
    if min_confidence is not None:
        abstained = abstain_mask(probs, min_confidence)
        actions = np.where(abstained, ABSTAIN, actions)
        if expected is not None:
            expected = np.where(abstained, np.nan, expected)
    return Decided(set_mask, actions, expected)


def set_labels(set_mask: np.ndarray, classes: Sequence[str]) -> list[list[str]]:
    """Each row's set as class names in class order (the v1 ``prediction_set``)."""
    rows, cols = np.nonzero(set_mask)
    out: list[list[str]] = [[] for _ in range(set_mask.shape[0])]
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        out[r].append(classes[c])
    return out


def action_names(actions: IntArray, names: Sequence[str]) -> list[str]:
    """Each row's decision as a name: ``"abstain"``, or the action's (cost-matrix row or class) name."""
    return ["abstain" if a == ABSTAIN else names[a] for a in actions.tolist()]
