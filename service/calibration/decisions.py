"""Decisions from calibrated probabilities: abstention below a confidence (Chow 1970) and the Bayes action
under a cost matrix, a*(x) = argmin_a Σ_k p̂_k(x)·C[a, k], with its expected cost min_a Σ_k p̂_k(x)·C[a, k].

C has shape (A, K), entries ≥ 0: A actions (the K classes, or any other list such as approve / reject /
review), K classes; C[a, k] is the cost of action a when the truth is k. With 0/1 costs the Bayes action is
the argmax.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import CalibrationInputError, FloatArray, IntArray

MAX_ACTIONS = 256
# Costs are summed per window and into Prometheus counters: a bound keeps every sum finite in float64.
MAX_COST = 1e12
_ACTION_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def check_cost_matrix(matrix: object, n_classes: int) -> FloatArray:
    """A cost matrix as float64 (A, K), 1 ≤ A ≤ 256, K = ``n_classes``, every entry finite, ≥ 0 and ≤ 1e12.

    Non-negative loses nothing: adding b_k to column k adds Σ_k p_k·b_k to every action's risk, so the Bayes
    action is unchanged, and a reward can always be written as a smaller cost. It keeps the exported cost
    sums valid Prometheus counters (they may only grow).
    """
    if not isinstance(matrix, list | tuple | np.ndarray):
        raise CalibrationInputError("cost matrix must be a list of rows (one per action) of numbers")
    try:
        c = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise CalibrationInputError("cost matrix must be a rectangular list of rows of numbers") from None
    if c.ndim != 2 or c.shape[1] != n_classes or not 1 <= c.shape[0] <= MAX_ACTIONS:
        raise CalibrationInputError(
            f"cost matrix must have shape (actions, {n_classes}) with 1 to {MAX_ACTIONS} actions; got {c.shape}"
        )
    if not np.isfinite(c).all():
        raise CalibrationInputError("cost matrix entries must all be finite numbers")
    if (c < 0).any():
        raise CalibrationInputError("cost matrix entries must be non-negative (shift a column to remove rewards)")
    if (c > MAX_COST).any():
        raise CalibrationInputError(f"cost matrix entries must be at most {MAX_COST:g}")
    return c


def check_action_names(actions: Sequence[str] | None, n_actions: int) -> list[str]:
    """One safe, distinct name per cost-matrix row; ``None`` names the rows after the classes ("0", "1", …)."""
    if actions is None:
        return [str(a) for a in range(n_actions)]
    names = list(actions)
    if len(names) != n_actions:
        raise CalibrationInputError(f"cost matrix has {n_actions} rows but {len(names)} action names")
    if not all(isinstance(a, str) and _ACTION_NAME.match(a) for a in names) or len(set(names)) != len(names):
        raise CalibrationInputError("action names must be distinct, 1-64 characters of letters, digits, _ . : -")
    return names


def check_min_confidence(value: object) -> float:
    """A confidence threshold in [0, 1] (0 never abstains)."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
        raise CalibrationInputError(f"min_confidence must be a number between 0 and 1; got {value!r}")
    return float(value)


def abstain_mask(probs: FloatArray, min_confidence: float) -> np.ndarray:
    """Chow's rule, shape (n,): abstain where the top calibrated probability is below ``min_confidence``."""
    out: np.ndarray = probs.max(axis=1) < min_confidence
    return out


def bayes_actions(probs: FloatArray, cost: FloatArray) -> tuple[IntArray, FloatArray]:
    """(actions (n,), expected costs (n,)): the risk of action a is R[i, a] = Σ_k p̂_ik·C[a, k]; the Bayes action
    minimises it (the lowest index wins a tie) and its risk is the expected cost."""
    risk = probs @ cost.T
    actions = np.argmin(risk, axis=1).astype(np.int64)
    expected: FloatArray = np.take_along_axis(risk, actions[:, None], axis=1)[:, 0]
    return actions, expected


def realised_costs(cost: FloatArray, actions: ArrayLike, labels: ArrayLike) -> FloatArray:
    """C[a_i, y_i], shape (n,): what the decisions taken actually cost once the truth is known."""
    out: FloatArray = cost[np.asarray(actions, dtype=np.int64), np.asarray(labels, dtype=np.int64)]
    return out
