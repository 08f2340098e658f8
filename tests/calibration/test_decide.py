"""decide(): each rule alone and together, against the primitives' hand-computed results."""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.calibration.conformal import SplitConformal
from service.calibration.decide import ABSTAIN, action_names, decide, set_labels

PROBS = np.array([[0.9, 0.05, 0.05], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]])
COST = np.array([[0.0, 5.0, 5.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.55, 0.55, 0.55]])  # + "review"


def test_nothing_asked_gives_nothing() -> None:
    assert decide(PROBS) == decide(PROBS, coverage=0.9)  # a coverage without a conformal calibrator: no set


def test_sets_alone() -> None:
    conformal = SplitConformal(score="lac").fit(PROBS, np.array([0, 1, 2]))
    # scores 0.1, 0.6, 0.4; coverage 0.5 → k = 2 → q̂ = 0.4 → p ≥ 0.6 is in the set
    decided = decide(PROBS, conformal=conformal, coverage=0.5)
    assert decided.actions is None and decided.set_mask is not None
    assert set_labels(decided.set_mask, ["a", "b", "c"]) == [["a"], [], ["c"]]


def test_abstain_then_bayes_action() -> None:
    decided = decide(PROBS, min_confidence=0.55, cost=COST)
    # row 0: risks 0.5, 0.95, 0.95, 0.55 → approve; row 1 abstains (0.5 < 0.55); row 2: 4, .8, .4, .55 → escalate
    assert decided.actions is not None and decided.actions.tolist() == [0, ABSTAIN, 2]
    assert decided.expected_cost is not None
    assert decided.expected_cost[[0, 2]] == pytest.approx([0.5, 0.4]) and math.isnan(decided.expected_cost[1])
    names = action_names(decided.actions, ["approve", "reject", "escalate", "review"])
    assert names == ["approve", "abstain", "escalate"]
    assert decide(PROBS, cost=COST).actions.tolist() == [0, 3, 2]  # type: ignore[union-attr]  # row 1: review


def test_abstain_alone_acts_on_the_top_label() -> None:
    decided = decide(PROBS, min_confidence=0.55)
    assert decided.actions is not None and decided.actions.tolist() == [0, ABSTAIN, 2]
    assert decided.expected_cost is None


def test_abstain_index_matches_the_stored_one() -> None:
    from service.db.decision_stats import ABSTAINED  # db/ may not import calibration/, so it repeats the value

    assert ABSTAIN == ABSTAINED
