"""What a predict request may ask beyond probabilities — ``coverage``, ``min_confidence``, ``decision`` — parsed
once for /v1 (body fields) and /v2 (request parameters), and applied to a block's calibrated probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from service.calibration import CalibrationInputError
from service.calibration.conformal_scores import check_coverage
from service.calibration.decide import Decided, decide
from service.calibration.decisions import check_min_confidence
from service.errors import InvalidInput, NoConformalCalibrator, NoCostMatrix
from service.repository.loaded import ActiveCalibration, LoadedVersion


@dataclass(frozen=True)
class DecisionAsk:
    coverage: float | None = None  # a conformal set at this coverage (1 − α)
    min_confidence: float | None = None  # abstain below this top calibrated probability
    decision: bool = False  # the Bayes action under the model's active cost matrix


def parse_ask(coverage: Any, min_confidence: Any, decision: Any) -> DecisionAsk | None:
    """The three request fields (None when absent), checked; None when nothing beyond probabilities is asked."""
    if coverage is None and min_confidence is None and decision in (None, False):
        return None
    try:
        cov = None if coverage is None else check_coverage(coverage)
        conf = None if min_confidence is None else check_min_confidence(min_confidence)
    except CalibrationInputError as exc:
        raise InvalidInput(str(exc)) from None
    if decision is not None and not isinstance(decision, bool):
        raise InvalidInput(f"decision must be true or false; got {decision!r}")
    return DecisionAsk(cov, conf, bool(decision))


@dataclass(frozen=True)
class Served:
    """What a block was served beyond probabilities, and by which versions."""

    ask: DecisionAsk
    decided: Decided
    conformal_version: int | None
    cost_matrix_version: int | None
    action_names: tuple[str, ...]  # names of ``decided.actions`` (cost-matrix rows, or the classes)


def apply_ask(ask: DecisionAsk, probs: np.ndarray, loaded: LoadedVersion, serving: ActiveCalibration) -> Served:
    """Sets and decisions for calibrated ``probs`` (n, K) with the state the request read once (``serving``)."""
    conformal = serving.conformal
    if ask.coverage is not None and conformal is None:
        raise NoConformalCalibrator(
            f"model '{loaded.name}' version {loaded.version} has no conformal calibrator for its active "
            f"calibrator {serving.calibrator_version}; fit one (re-fit the calibrator) or drop 'coverage'")
    costs = serving.costs if ask.decision else None
    if ask.decision and costs is None:
        raise NoCostMatrix(f"model '{loaded.name}' has no active cost matrix for its {len(loaded.card.classes)} "
                           "classes; set one with PUT /v1/admin/models/{model}/cost-matrix or drop 'decision'")
    decided = decide(probs, conformal=conformal.conformal if conformal else None, coverage=ask.coverage,
                     min_confidence=ask.min_confidence, cost=costs.matrix if costs else None)
    return Served(ask, decided, conformal.conformal_version if conformal and ask.coverage is not None else None,
                  costs.cost_matrix_version if costs else None,
                  costs.actions if costs else tuple(loaded.card.classes))
