"""Shadow calibrators on the feedback path: score every new label for the serving calibrator and each shadow
from the stored logits (in the feedback transaction), then apply ``if_better_in_shadow`` (after it).

Nothing here runs on predict: a shadow costs the predict path nothing. On feedback, a model version without
shadows costs one indexed read of the (tiny) shadow table per commit.

"Active" in a pair is the calibrator that **served** the prediction (its ``calibrator_version``), re-scored
from the logits exactly as the shadow is, so both sides of each difference are computed the same way. The
policy compares a shadow with the calibrator active now, from the evidence gathered against that one.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.calibration import calibrator_from_dict
from service.calibration.base import Calibrator as CalibratorProtocol
from service.calibration.shadow_compare import PairScore, promotion_bound, score_pair
from service.db import audit, shadow_stats
from service.db import calibrators as calibrator_rows
from service.db.predictions import StoredPrediction
from service.db.stats import bucket_start
from service.repository.registry import Registry

log = logging.getLogger(__name__)
POLICY_ACTOR = "policy:if_better_in_shadow"
CACHE_SIZE = 256


class ShadowScoring:
    def __init__(self, *, sessions: sessionmaker[Session], registry: Registry, bucket_seconds: int, clip: float,
                 alpha: float, bound: str = "bernstein") -> None:
        self.sessions = sessions
        self.bound = bound
        self.registry = registry
        self.bucket_seconds = bucket_seconds
        self.clip = clip
        self.alpha = alpha
        # calibrator rows never change once stored, so a parsed calibrator can be kept for good
        self._calibrators: dict[tuple[str, int, int], CalibratorProtocol | None] = {}
        self._lock = threading.Lock()

    def score(self, session: Session, rows: list[StoredPrediction], labels: list[int]) -> list[tuple[str, int]]:
        """Add the paired statistics of these newly stored labels (inside the caller's transaction); the
        model versions whose shadows have a promotion policy and just gained evidence."""
        if not rows:
            return []
        shadows: dict[tuple[str, int], list[Any]] = defaultdict(list)
        for s in shadow_stats.list_shadows(session=session):
            shadows[(s.model, s.version)].append(s)
        if not shadows:
            return []
        groups: dict[tuple[str, int, int], list[int]] = defaultdict(list)
        for i, r in enumerate(rows):
            if (r.model, r.version) in shadows:
                groups[(r.model, r.version, r.calibrator_version)].append(i)
        scores: dict[shadow_stats.PairKey, PairScore] = {}
        touched: set[tuple[str, int]] = set()
        for (model, version, served), idx in groups.items():
            active = self._calibrator(session, model, version, served)
            if active is None:
                continue
            logits = np.stack([rows[i].logits for i in idx]).astype(np.float64)
            y = np.asarray([labels[i] for i in idx], dtype=np.int64)
            buckets: dict[Any, list[int]] = defaultdict(list)
            for j, i in enumerate(idx):
                buckets[bucket_start(rows[i].created_at, self.bucket_seconds)].append(j)
            p_active = active.predict_proba(logits)
            for shadow in shadows[(model, version)]:
                if shadow.calibrator_version == served:  # an old prediction served by this very calibrator
                    continue
                cal = self._calibrator(session, model, version, shadow.calibrator_version)
                if cal is None:
                    continue
                p_shadow = cal.predict_proba(logits)
                for bucket, js in buckets.items():
                    key = shadow_stats.PairKey(model, version, shadow.calibrator_version, served, bucket)
                    scores[key] = score_pair(p_active[js], p_shadow[js], y[js], clip=self.clip)
                if shadow.policy == "if_better_in_shadow":
                    touched.add((model, version))
        shadow_stats.add_pair_scores(session, scores)
        return sorted(touched)

    def _calibrator(self, session: Session, model: str, version: int, cv: int) -> CalibratorProtocol | None:
        key = (model, version, cv)
        with self._lock:
            if key in self._calibrators:
                return self._calibrators[key]
        row = calibrator_rows.get_calibrator(session=session, model=model, version=version, calibrator_version=cv)
        try:
            cal = None if row is None else calibrator_from_dict({"method": row.method, "params": row.params})
        except Exception:  # a stored calibrator that cannot be served cannot be scored either
            log.warning("calibrator %s/%s/%s cannot be loaded for shadow scoring", model, version, cv)
            cal = None
        with self._lock:
            if len(self._calibrators) >= CACHE_SIZE:
                self._calibrators.clear()
            self._calibrators[key] = cal
        return cal

    # ---- the promotion policy, after the feedback transaction committed --------------------------------
    def promote(self, versions: list[tuple[str, int]]) -> list[dict[str, Any]]:
        """Activate, per model version, the policy shadow whose anytime-valid NLL-improvement bound exceeds its
        margin against the calibrator active now (the highest bound if several do). Its own transaction, so a
        failure here (e.g. a concurrent activation by another replica) never touches the stored labels."""
        promoted: list[dict[str, Any]] = []
        for model, version in versions:
            try:
                with self.sessions() as session:
                    out = self._promote_one(session, model, version)
                    session.commit()
            except SQLAlchemyError:
                log.exception("shadow promotion of %s version %s failed; retried on the next labels", model, version)
                continue
            if out is not None:
                promoted.append(out)
        if promoted:
            self.registry.sync_calibrators()
        return promoted

    def _promote_one(self, session: Session, model: str, version: int) -> dict[str, Any] | None:
        active = calibrator_rows.get_active(session=session, model=model, version=version)
        if active is None:
            return None
        best: tuple[float, Any, Any] | None = None
        for shadow in shadow_stats.list_shadows(session=session, model=model, version=version):
            if shadow.policy != "if_better_in_shadow":
                continue
            evidence = shadow_stats.read_evidence(session=session, model=model, version=version,
                                                  calibrator_version=shadow.calibrator_version,
                                                  active_version=active.calibrator_version)
            bound = promotion_bound(evidence, clip=self.clip, alpha=self.alpha, bound=self.bound)
            if bound > shadow.margin and (best is None or bound > best[0]):
                best = (bound, shadow, evidence)
        if best is None:
            return None
        bound, shadow, evidence = best
        row = calibrator_rows.get_calibrator(session=session, model=model, version=version,
                                             calibrator_version=shadow.calibrator_version)
        if row is None:
            return None
        detail = {"calibrator_version": shadow.calibrator_version, "previous": active.calibrator_version,
                  "policy": shadow.policy, "margin": shadow.margin, "n": evidence.sums.n, "lower_bound": bound,
                  "mean_nll_improvement": evidence.sums.total / evidence.sums.n, "alpha": self.alpha,
                  "clip": self.clip, "bound": self.bound}
        calibrator_rows.activate_calibrator(session=session, row=row)
        shadow_stats.delete_shadow(session=session, model=model, version=version,
                                   calibrator_version=shadow.calibrator_version)
        audit.record(session=session, actor=POLICY_ACTOR, action="promote_shadow", model=model, version=version,
                     detail=detail)
        return {"model": model, "version": version, **detail}
