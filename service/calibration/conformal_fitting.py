"""Fit a conformal calibrator on held-out calibrated probabilities, with an honest evaluation.

The rows must not have been used to fit the probability calibrator (a calibrator fitted on them makes their
scores optimistic and the coverage falls short). The evaluation splits them once more — fit on one part,
measure coverage and set size on the other — and the stored calibrator is then fitted on all of them (more
rows, a tighter quantile); the evaluation describes the procedure, not that exact object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import check_probabilities
from service.calibration.conformal import SplitConformal
from service.calibration.conformal_scores import Score
from service.calibration.coverage_bounds import clopper_pearson
from service.calibration.split import stratified_split

COVERAGES = (0.8, 0.9, 0.95)
MIN_EVAL_ROWS = 20


@dataclass
class ConformalReport:
    conformal: SplitConformal
    evaluation: dict[str, Any] | None  # None when there were too few rows to hold any out

    def to_dict(self) -> dict[str, Any]:
        """The stored payload (``conformal.json``, or a db row's params + evaluation)."""
        return {**self.conformal.to_dict(), "evaluation": self.evaluation}


def evaluate_sets(conformal: SplitConformal, probs: np.ndarray, labels: np.ndarray,
                  coverages: tuple[float, ...] = COVERAGES) -> dict[str, Any]:
    """Per target coverage: realised coverage (+ Clopper–Pearson 95% CI), mean set size, empty-set rate."""
    out: dict[str, Any] = {}
    rows = np.arange(labels.size)
    for c in coverages:
        sets = conformal.predict_set(probs, c)
        hits = int(sets[rows, labels].sum())
        size = sets.sum(axis=1)
        out[f"{c:g}"] = {"coverage": hits / labels.size, "coverage_ci": list(clopper_pearson(hits, labels.size)),
                         "mean_set_size": float(size.mean()), "empty_rate": float((size == 0).mean())}
    return out


def fit_conformal(
    probs: ArrayLike, labels: ArrayLike, *, score: Score = "aps", mondrian: bool = False, seed: int = 0,
    eval_size: float = 0.5, coverages: tuple[float, ...] = COVERAGES,
) -> ConformalReport:
    """SplitConformal fitted on every held-out row, evaluated on a stratified ``eval_size`` part of them
    after a fit on the rest (skipped, ``evaluation=None``, below 2·MIN_EVAL_ROWS rows)."""
    p, y = check_probabilities(probs, labels)

    def make() -> SplitConformal:
        return SplitConformal(score=score, mondrian=mondrian, seed=seed)

    evaluation = None
    if y.size >= 2 * MIN_EVAL_ROWS:
        fit_idx, eval_idx = stratified_split(y, test_size=eval_size, seed=seed)
        inner = make().fit(p[fit_idx], y[fit_idx])
        evaluation = {"n_fit": int(fit_idx.size), "n_eval": int(eval_idx.size),
                      "sets": evaluate_sets(inner, p[eval_idx], y[eval_idx], coverages)}
    return ConformalReport(make().fit(p, y), evaluation)
