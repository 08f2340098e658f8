"""``method="auto"``: fit candidate calibrators on one part of the data, keep the one with the lowest
held-out NLL, and keep the identity unless a candidate beats it (DESIGN.md §6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike

from service.calibration import metrics
from service.calibration.base import (
    CalibrationInputError,
    Calibrator,
    FloatArray,
    NotFittedError,
    check_fit_inputs,
    check_method,
    softmax,
)
from service.calibration.identity import IdentityCalibrator
from service.calibration.split import stratified_split

DEFAULT_CANDIDATES = ("temperature", "focal_temperature", "vector", "dirichlet", "isotonic", "platt")
MAX_DIRICHLET_CLASSES = 50  # K² parameters: beyond this the default list leaves Dirichlet out


class AutoCalibrator:
    """Picks a calibrator by held-out NLL on a seeded stratified split, then refits it on all rows.

    Candidates that cannot fit the data (Platt for K > 2, Dirichlet by default for K > 50) are skipped.
    ``scores_`` holds each held-out NLL, ``chosen_`` the fitted winner. The candidates come from ``table``
    (method name → class), given by whoever builds it — the method registry binds its own table with
    ``bound_to`` — so this module never imports the registry that lists it.
    """

    method: ClassVar[str] = "auto"
    table: ClassVar[Mapping[str, type[Calibrator]]] = {}
    preserves_argmax: ClassVar[bool] = False
    chosen_: Calibrator
    scores_: dict[str, float]

    def __init__(
        self,
        *,
        candidates: tuple[str, ...] | list[str] | None = None,
        test_size: float = 0.3,
        seed: int = 0,
        refit: bool = True,
    ) -> None:
        unknown = [name for name in candidates or () if name not in self.table or name == self.method]
        if unknown:
            raise CalibrationInputError(f"unknown auto candidates: {', '.join(map(str, unknown))}")
        self.candidates = None if candidates is None else tuple(candidates)
        self.test_size = test_size
        self.seed = seed
        self.refit = refit

    @classmethod
    def bound_to(cls, table: Mapping[str, type[Calibrator]]) -> type[AutoCalibrator]:
        """This class with its candidate table: ``AutoCalibrator.bound_to({"temperature": TS, …})``."""
        return type(cls.__name__, (cls,), {"table": dict(table), "__doc__": cls.__doc__})

    def _candidate_names(self, n_classes: int) -> tuple[str, ...]:
        if not self.table:
            raise CalibrationInputError("AutoCalibrator has no candidate table: use make_calibrator('auto') "
                                        "or AutoCalibrator.bound_to(table)")
        if self.candidates is not None:
            return self.candidates
        skip = {"platt"} if n_classes != 2 else set()
        if n_classes > MAX_DIRICHLET_CLASSES:
            skip.add("dirichlet")
        return tuple(name for name in DEFAULT_CANDIDATES if name not in skip)

    def fit(self, logits: ArrayLike, labels: ArrayLike) -> Self:
        z, y = check_fit_inputs(logits, labels)
        fit_idx, eval_idx = stratified_split(y, test_size=self.test_size, seed=self.seed)
        self.scores_ = {}
        best: Calibrator = IdentityCalibrator()
        if eval_idx.size and np.unique(y[fit_idx]).size >= 2:
            z_eval, y_eval = z[eval_idx], y[eval_idx]
            best_nll = self.scores_["identity"] = metrics.nll(softmax(z_eval), y_eval)
            for name in self._candidate_names(z.shape[1]):
                try:
                    candidate = self.table[name]().fit(z[fit_idx], y[fit_idx])
                except CalibrationInputError:
                    continue
                score = self.scores_[name] = metrics.nll(candidate.predict_proba(z_eval), y_eval)
                if score < best_nll:
                    best, best_nll = candidate, score
        if self.refit and best.method != "identity":
            best = self.table[best.method]().fit(z, y)
        self.chosen_ = best
        return self

    def predict_proba(self, logits: ArrayLike) -> FloatArray:
        try:
            chosen = self.chosen_
        except AttributeError:
            raise NotFittedError("auto calibration is not fitted; call fit() first") from None
        return chosen.predict_proba(logits)

    def to_dict(self) -> dict[str, Any]:
        if not hasattr(self, "chosen_"):
            raise NotFittedError("auto calibration is not fitted; call fit() first")
        return {
            "method": self.method,
            "params": {
                "chosen": self.chosen_.to_dict(),
                "scores": dict(self.scores_),
                "candidates": None if self.candidates is None else list(self.candidates),
                "test_size": self.test_size,
                "seed": self.seed,
                "refit": self.refit,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        params = check_method(data, cls.method)
        candidates = params.get("candidates")
        cal = cls(
            candidates=None if candidates is None else tuple(candidates),
            test_size=float(params.get("test_size", 0.3)),
            seed=int(params.get("seed", 0)),
            refit=bool(params.get("refit", True)),
        )
        chosen = params["chosen"]
        if not isinstance(chosen, dict) or chosen.get("method") == cls.method:
            raise CalibrationInputError("auto calibrator must wrap one concrete calibrator")
        cal.chosen_ = cls.table[chosen["method"]].from_dict(chosen)
        cal.scores_ = {str(k): float(v) for k, v in params.get("scores", {}).items()}
        return cal
