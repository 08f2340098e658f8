"""Label-shift check: the EM class prior of recent unlabelled traffic against the reference prior.

The reference prior is the mean calibrated posterior of the reference predictions (the convention of
``abstention``'s EMImbalanceAdapter: with calibrated posteriors it estimates the training prior, and EM on
the reference rows themselves then finds no shift). The alarm compares the total-variation distance
½Σ|π̂ − π^ref| with a tolerance through its bootstrap lower bound, so noise in a few hundred rows is no alarm.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service.calibration import label_shift
from service.db.stats import Scope
from service.db.unlabelled import served_probabilities

MIN_ROWS = 100  # fewer unlabelled rows than this give no verdict
ALPHA = 0.10  # the prior CI is the 90% bootstrap interval
TEST_ALPHA = 0.05  # the alarm: a one-sided 5% bootstrap test
# EM creeps towards 0 for an absent class: estimate and resamples stop at the same tolerance, so the point
# is comparable with its interval
BOOT_TOL, BOOT_ITER = 1e-8, 2_000


def reference_prior(reference_probs: np.ndarray) -> np.ndarray:
    """(K,) mean calibrated posterior of the reference predictions."""
    return np.asarray(np.asarray(reference_probs, dtype=np.float64).mean(axis=0), dtype=np.float64)


def label_shift_report(
    recent_probs: np.ndarray, prior: np.ndarray, *, tolerance: float, n_boot: int = 100, seed: int = 0,
    min_rows: int = MIN_ROWS,
) -> dict[str, Any]:
    """JSON for the window report and the gauges: π̂ with its CI, the TV distance with its CI, a verdict."""
    m = int(recent_probs.shape[0])
    base: dict[str, Any] = {"n": m, "reference_prior": [float(x) for x in prior], "tolerance": tolerance,
                            "method": "em_saerens2002"}
    if m < min_rows:
        return {**base, "state": "insufficient_predictions", "prior": None, "prior_ci": None, "tv": None,
                "tv_noise": None, "reason": f"{m} unlabelled predictions, {min_rows} needed for an estimate"}
    est = label_shift.em_prior(recent_probs, prior, tol=BOOT_TOL, max_iter=BOOT_ITER)  # as the resamples
    boots = label_shift.bootstrap_priors(recent_probs, prior, n_boot=n_boot, seed=seed, tol=BOOT_TOL,
                                         max_iter=BOOT_ITER)
    lo, hi = np.quantile(boots, [ALPHA / 2, 1 - ALPHA / 2], axis=0)
    tv = float(label_shift.total_variation(est.prior, prior))
    noise = float(np.quantile(label_shift.total_variation(boots, est.prior), 1 - TEST_ALPHA))
    shifted = tv > tolerance + noise
    reason = (f"total variation {tv:.3f} {'>' if shifted else '≤'} tolerance {tolerance:.3f} + bootstrap noise "
              f"{noise:.3f} (95% quantile of the resamples' distance to the estimate)")
    return {**base, "state": "shifted" if shifted else "ok", "reason": reason,
            "prior": [float(x) for x in est.prior], "prior_ci": [[float(x) for x in lo], [float(x) for x in hi]],
            "tv": tv, "tv_noise": noise, "iterations": est.iterations, "converged": est.converged}


def scope_label_shift(
    session: Session, scope: Scope, *, activated_at: datetime | None, start: datetime, end: datetime, rows: int,
    tolerance: float, n_boot: int = 100,
) -> dict[str, Any]:
    """The label-shift check of one calibrator: the newest ``rows`` unlabelled predictions in [start, end)
    against the mean posterior of the first ``rows`` predictions it served after ``activated_at``."""
    if scope.calibrator_version is None or activated_at is None:
        return {"state": "no_reference", "reason": "label shift is judged per calibrator, from its activation",
                "n": 0}
    cv = scope.calibrator_version
    reference = served_probabilities(session=session, model=scope.model, version=scope.version, calibrator_version=cv,
                                     start=activated_at, end=end, limit=rows, unlabelled_only=False,
                                     newest_first=False)
    if reference.shape[0] < MIN_ROWS:
        return {"state": "no_reference", "n": 0, "reason": f"{reference.shape[0]} predictions since activation, "
                                                           f"{MIN_ROWS} needed for a reference prior"}
    recent = served_probabilities(session=session, model=scope.model, version=scope.version, calibrator_version=cv,
                                  start=start, end=end, limit=rows)
    if recent.shape[0] == 0:
        recent = np.zeros((0, reference.shape[1]))
    out = label_shift_report(recent, reference_prior(reference), tolerance=tolerance, n_boot=n_boot)
    return {**out, "reference_rows": int(reference.shape[0])}
