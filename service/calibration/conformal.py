"""The conformal calibrator: fitted on held-out calibrated probabilities, stored as JSON, asked for sets at any
coverage. Marginal sets, or Mondrian (class-conditional: one quantile per class, coverage ≥ 1 − α in each class).

``SplitConformal(score="aps", mondrian=False).fit(probs, labels).predict_set(probs, coverage=0.9)``
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import (
    CalibrationInputError,
    FloatArray,
    NotFittedError,
    check_method,
    check_probabilities,
)
from service.calibration.conformal_scores import (
    Score,
    check_coverage,
    check_score,
    conformal_quantile,
    prediction_sets,
    true_label_scores,
)

METHOD = "split_conformal"


class SplitConformal:
    """Split conformal prediction sets over calibrated probabilities (n, K).

    The learned state is the sorted calibration scores per group (one group, or one per class when
    ``mondrian``), so a request may ask for any coverage and gets q̂ = the ⌈(n+1)(1−α)⌉-th smallest score of its
    group. APS calibration scores are randomised (u ~ U(0, 1) from ``seed``), as in MAPIE, so that the
    deterministic served set is not more conservative than it has to be.
    """

    method = METHOD

    def __init__(self, *, score: Score = "lac", mondrian: bool = False, seed: int = 0) -> None:
        self.score: Score = check_score(score)
        self.mondrian = bool(mondrian)
        self.seed = int(seed)
        self._thresholds: dict[float, FloatArray] = {}

    def fit(self, probs: ArrayLike, labels: ArrayLike) -> Self:
        """Learn from held-out calibrated probabilities (n, K) and labels (n,); n ≥ 1."""
        p, y = check_probabilities(probs, labels)
        u = np.random.default_rng(self.seed).random(size=(p.shape[0],)) if self.score == "aps" else None
        s = true_label_scores(p, y, self.score, u)
        k = p.shape[1]
        groups = [s[y == c] for c in range(k)] if self.mondrian else [s]
        self.n_classes_ = k
        self.scores_: list[FloatArray] = [np.sort(g) for g in groups]
        self._thresholds.clear()
        return self

    def thresholds(self, coverage: float) -> FloatArray:
        """q̂ per class, shape (K,), read-only: +∞ for a group with too few rows (that class is always in the set).

        Cached per coverage: clients ask for a handful of targets, and this runs on every request block.
        """
        self._check_fitted()
        cached = self._thresholds.get(coverage)
        if cached is not None:
            return cached
        c = check_coverage(coverage)
        q = np.array([conformal_quantile(g, c) for g in self.scores_], dtype=np.float64)
        q = np.repeat(q, self.n_classes_) if q.shape[0] == 1 else q
        q.flags.writeable = False
        if len(self._thresholds) < 64:  # bounded: a client sweeping coverages cannot grow it without limit
            self._thresholds[c] = q
        return q

    def predict_set(self, probs: ArrayLike, coverage: float) -> np.ndarray:
        """Boolean membership (n, K) of the conformal set at ``coverage`` = 1 − α."""
        q = self.thresholds(coverage)
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] != self.n_classes_:
            raise CalibrationInputError(
                f"probabilities must have shape (n, {self.n_classes_}) for this conformal calibrator; got {p.shape}"
            )
        return prediction_sets(p, q, self.score)

    @property
    def n_fit(self) -> int:
        self._check_fitted()
        return int(sum(g.shape[0] for g in self.scores_))

    def group_sizes(self) -> list[int]:
        """Calibration rows per group (one entry, or one per class for Mondrian)."""
        self._check_fitted()
        return [int(g.shape[0]) for g in self.scores_]

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {
            "method": METHOD,
            "params": {
                "score": self.score,
                "mondrian": self.mondrian,
                "seed": self.seed,
                "n_classes": self.n_classes_,
                "scores": [g.tolist() for g in self.scores_],
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        params = check_method(data, METHOD)
        obj = cls(score=params["score"], mondrian=bool(params["mondrian"]), seed=int(params.get("seed", 0)))
        k = int(params["n_classes"])
        scores = [np.asarray(g, dtype=np.float64) for g in params["scores"]]
        if k < 2 or len(scores) != (k if obj.mondrian else 1):
            raise CalibrationInputError(f"conformal calibrator has {len(scores)} score groups for {k} classes")
        if any(g.ndim != 1 or not np.isfinite(g).all() for g in scores):
            raise CalibrationInputError("conformal calibration scores must be finite 1-D lists")
        obj.n_classes_ = k
        obj.scores_ = [np.sort(g) for g in scores]
        return obj

    def _check_fitted(self) -> None:
        if not hasattr(self, "scores_"):
            raise NotFittedError("the conformal calibrator is not fitted; call fit() first")


def conformal_from_dict(data: dict[str, Any]) -> SplitConformal:
    """A fitted conformal calibrator from stored ``to_dict()`` output; malformed input → CalibrationInputError."""
    if not isinstance(data, dict):
        raise CalibrationInputError(f"a conformal calibrator must be a JSON object; got {type(data).__name__}")
    try:
        return SplitConformal.from_dict(data)
    except CalibrationInputError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationInputError(f"malformed conformal calibrator parameters: {exc!r}") from None

