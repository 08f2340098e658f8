"""What "no drift" looks like for one calibrator version: its held-out evaluation at fit time, and the
first K windows after its activation (DESIGN.md §7; NannyML's reference chunks).

Reference windows have the analysed window's length and are used only once complete and only if they
end before the analysed window starts, so a window is never compared with itself. The CI rule prefers
the pooled reference windows and resamples them at the *analysed* window's label count: a window of
n labels is compared with "the ECE a window of n labels shows when nothing changed", so the upward
small-sample bias of ECE is the same on both sides. Without completed reference windows it falls back
to the held-out evaluation's CI (fit-time sample size).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service.calibration import streaming
from service.db.calibrators import activation_record
from service.db.stats import Scope, as_utc, bucket_start
from service.db.window_sums import totals_fingerprint
from service.monitoring.drift import DRIFT_ALPHA, EvaluationReference, gap_and_se, reference_from_evaluation
from service.monitoring.state import WindowState, pooled, read_states

SOURCES = ("auto", "activation", "evaluation")
CACHE_ENTRIES = 256


@dataclass
class Reference:
    evaluation: EvaluationReference | None = None
    windows: list[WindowState] = field(default_factory=list)  # completed reference windows, in order
    activated_at: datetime | None = None
    _bounds: dict[tuple[Any, ...], tuple[float, float]] = field(default_factory=dict, repr=False)

    def before(self, t: datetime) -> list[WindowState]:
        """Reference windows that ended by ``t`` (never overlapping an analysed window starting at t)."""
        return [w for w in self.windows if w.end <= t]

    def ci_bound(
        self, t: datetime, n: float, *, source: str, n_bins: int, n_min: int, n_boot: int
    ) -> tuple[float | None, float | None, str]:
        """(reference ECE, upper bound comparable with a window of n labels, source used)."""
        used = self.before(t)
        ref = pooled(used)
        if source in ("auto", "activation") and ref is not None and ref.fine.n >= n_min:
            n_q = float(f"{n:.3g}")  # the bound varies smoothly with n: cache it per 3 significant digits
            key = (len(used), n_q, n_bins, n_boot)
            if key not in self._bounds:
                scaled = ref.fine.scaled(n_q / ref.fine.n)  # resample size n, same per-bin rates
                point, _, hi = streaming.ece_ci_from_bins(scaled, n_bins=n_bins, n_boot=n_boot, seed=1,
                                                          alpha=DRIFT_ALPHA)
                self._bounds[key] = (point, hi)
            point, hi = self._bounds[key]
            return point, hi, "activation_windows"
        if source in ("auto", "evaluation") and self.evaluation is not None:
            return self.evaluation.ece, self.evaluation.ece_hi, "held_out_evaluation"
        return None, None, "none"

    def window_eces(self, t: datetime, *, n_bins: int, n_min: int) -> np.ndarray:
        return np.array([w.fine.ece(n_bins) for w in self.before(t) if w.fine.n >= n_min])

    def gap(self, t: datetime, *, n_min: int) -> tuple[float, float] | None:
        """(mean confidence − accuracy, standard error) of the reference."""
        ref = pooled(self.before(t))
        if ref is not None and ref.fine.n >= n_min:
            return gap_and_se(ref.fine.count, ref.fine.confidence_sum, ref.fine.correct_sum)
        ev = self.evaluation
        if ev is None or ev.accuracy is None or ev.mean_confidence is None or not ev.n:
            return None
        return ev.mean_confidence - ev.accuracy, math.sqrt(ev.accuracy * (1 - ev.accuracy) / ev.n)

    def confidence(self, t: datetime) -> np.ndarray | None:
        ref = pooled(self.before(t))
        return ref.confidence_count if ref is not None else None

    def describe(self, t: datetime, n_bins: int) -> dict[str, Any]:
        used = self.before(t)
        ev = self.evaluation
        return {
            "activated_at": self.activated_at.isoformat() if self.activated_at else None,
            "evaluation": None if ev is None else {"ece": ev.ece, "ece_hi": ev.ece_hi, "accuracy": ev.accuracy,
                                                   "mean_confidence": ev.mean_confidence, "n": ev.n},
            "windows": [{"start": w.start.isoformat(), "end": w.end.isoformat(), "labelled": int(w.fine.n),
                         "predicted": int(w.predicted),
                         "ece": None if w.fine.n == 0 else float(w.fine.ece(n_bins))} for w in used],
        }


def load_reference(
    session: Session, scope: Scope, *, length: timedelta, k: int, now: datetime, bucket_seconds: int,
) -> Reference:
    """The calibrator's evaluation and its first ``k`` windows of ``length`` after activation (complete
    ones only). ``scope.calibrator_version`` None (all calibrators) has no reference.

    Memoised per process: reference windows lie in the past, so they are re-read only when their
    fingerprint changes — activation time, completed windows, labelled and predicted counts (a late label
    landing in a reference window changes it). The fingerprint reads one row per bucket; the windows
    themselves are buckets × bins (bench/window_query.py)."""
    if scope.calibrator_version is None:
        return Reference()
    row = activation_record(session=session, model=scope.model, version=scope.version,
                            calibrator_version=scope.calibrator_version)
    if row is None:
        return Reference()
    activated_at, created_at, payload = row
    evaluation = reference_from_evaluation(payload)
    since = activated_at or created_at
    if since is None or k < 1:
        return Reference(evaluation)
    origin = bucket_start(as_utc(since), bucket_seconds)
    edges = [e for e in (origin + i * length for i in range(k + 1)) if e <= now]
    if len(edges) < 2:
        return Reference(evaluation, [], origin)
    key = (session.get_bind().engine.url.render_as_string(hide_password=True), scope, length, k, bucket_seconds)
    fingerprint = (origin, tuple(edges), *totals_fingerprint(session, scope, edges[0], edges[-1]))
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] == fingerprint:
        return hit[1]
    reference = Reference(evaluation, read_states(session, scope, edges), origin)
    with _cache_lock:
        _cache[key] = (fingerprint, reference)
        _cache.move_to_end(key)
        while len(_cache) > CACHE_ENTRIES:
            _cache.popitem(last=False)
    return reference


_cache: OrderedDict[tuple[Any, ...], tuple[tuple[Any, ...], Reference]] = OrderedDict()
_cache_lock = threading.Lock()
