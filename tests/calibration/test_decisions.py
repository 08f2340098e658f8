"""Abstention and Bayes actions: hand-computed cases, the 0/1-cost argmax, and a brute-force check of the
expected cost against explicit sums; bad cost matrices are refused with a clear message."""

from __future__ import annotations

import numpy as np
import pytest

from service.calibration.base import CalibrationInputError
from service.calibration.decisions import (
    abstain_mask,
    bayes_actions,
    check_action_names,
    check_cost_matrix,
    check_min_confidence,
    realised_costs,
)
from tests.calibration.factories import softmax


def test_bayes_action_hand_computed() -> None:
    # approve costs 10 if the truth is "fraud" (class 1); reject costs 1 if it is "ok"; review always costs 0.5
    cost = check_cost_matrix([[0, 10], [1, 0], [0.5, 0.5]], 2)
    probs = np.array([[0.99, 0.01], [0.7, 0.3], [0.05, 0.95]])
    actions, expected = bayes_actions(probs, cost)
    # risks: row 0: approve 0.1, reject 0.99, review 0.5; row 1: 3.0, 0.7, 0.5; row 2: 9.5, 0.05, 0.5
    assert actions.tolist() == [0, 2, 1]
    np.testing.assert_allclose(expected, [0.1, 0.5, 0.05])
    np.testing.assert_allclose(realised_costs(cost, actions, [1, 0, 1]), [10.0, 0.5, 0.0])


def test_zero_one_costs_give_the_argmax_and_one_minus_confidence() -> None:
    rng = np.random.default_rng(0)
    probs = softmax(rng.normal(size=(500, 7)) * 2)
    actions, expected = bayes_actions(probs, 1.0 - np.eye(7))
    assert np.array_equal(actions, probs.argmax(axis=1))
    np.testing.assert_allclose(expected, 1.0 - probs.max(axis=1))


def test_expected_cost_is_the_minimum_of_explicit_sums() -> None:
    rng = np.random.default_rng(1)
    probs, cost = softmax(rng.normal(size=(50, 4))), rng.exponential(size=(3, 4))
    actions, expected = bayes_actions(probs, cost)
    for i in range(50):
        risks = [sum(probs[i, k] * cost[a, k] for k in range(4)) for a in range(3)]
        assert actions[i] == int(np.argmin(risks)) and expected[i] == pytest.approx(min(risks))


def test_abstain_below_the_threshold() -> None:
    probs = np.array([[0.6, 0.4], [0.8, 0.2], [0.5, 0.5]])
    assert abstain_mask(probs, 0.7).tolist() == [True, False, True]
    assert not abstain_mask(probs, 0.0).any()
    assert check_min_confidence(0.7) == 0.7


@pytest.mark.parametrize(("matrix", "message"), [
    ([[0, 1], [1, 0]], r"shape \(actions, 3\)"),
    ([[0, 1, 2], [1, 0]], "rectangular"),
    ([[0, 1, float("nan")]], "finite"),
    ([[0, 1, float("inf")]], "finite"),
    ([[0, -1, 2]], "non-negative"),
    ([[0, 1e300, 2]], "at most 1e"),
    ([[0, "a", 1]], "rectangular"),
    ([], r"shape \(actions, 3\)"),
    ("0,1,2", "list of rows"),
    ([[[0, 1, 2]]], r"shape \(actions, 3\)"),
])
def test_bad_cost_matrices_are_refused(matrix: object, message: str) -> None:
    with pytest.raises(CalibrationInputError, match=message):
        check_cost_matrix(matrix, 3)


def test_action_names_and_thresholds_are_checked() -> None:
    assert check_action_names(None, 2) == ["0", "1"]
    assert check_action_names(["approve", "review"], 2) == ["approve", "review"]
    for bad in (["approve"], ["a", "a"], ["a b", "c"], ["", "c"]):
        with pytest.raises(CalibrationInputError):
            check_action_names(bad, 2)
    for bad_t in (-0.1, 1.1, float("nan"), True, "0.5"):
        with pytest.raises(CalibrationInputError, match="min_confidence"):
            check_min_confidence(bad_t)
