"""Shadow calibrators, the admin side: put a stored calibrator in shadow, take it out, list, compare.

Each change is one transaction with its audit row. A version holds at most ``max_shadows_per_version``
shadows; activating a shadow (by hand, by rollback or by its policy) ends its shadow status. Scoring and the
promotion policy live on the feedback path (``shadow_scoring``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.orm import Session, sessionmaker

from service.calibration import CalibrationInputError, calibrator_from_dict
from service.calibration.binned import ReliabilityBins, bin_edges
from service.calibration.paired import PairedSums, paired_interval
from service.calibration.shadow_compare import Evidence, ece_difference, promotion_bound
from service.calibration.streaming import FINE_BINS
from service.db import audit, shadow_stats
from service.db import calibrators as calibrator_rows
from service.db.engine import read_session
from service.db.tables import ShadowCalibrator
from service.errors import CalibratorNotFound, InvalidInput, NotInShadow, ShadowLimitReached, ShadowOfActive
from service.monitoring.report import reliability_rows
from service.monitoring.windows import parse_bins, resolve_window
from service.repository.registry import Registry
from service.validation import is_number, parse_int

ShadowPolicy = Literal["never", "if_better_in_shadow"]
SIGN = "active − shadow: a positive difference means the shadow is better"


class ShadowOptions(BaseModel):
    """The body of ``PUT …/calibrators/{cv}/shadow``."""

    model_config = ConfigDict(extra="forbid")

    policy: ShadowPolicy = Field(default="never", description="if_better_in_shadow: activate it once the "
                                 "anytime-valid lower bound of its mean NLL improvement exceeds the margin")
    margin: float = Field(default=0.0, ge=0.0, le=10.0, allow_inf_nan=False,
                          description="nats per label the bound must exceed")


def parse_shadow_options(data: bytes) -> ShadowOptions:
    try:
        return ShadowOptions.model_validate_json(data or b"{}")
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidInput(f"{'.'.join(str(p) for p in first['loc']) or 'body'}: {first['msg']}") from None


def start_shadow(session: Session, *, model: str, version: int, calibrator_version: int, policy: str, margin: float,
                 actor: str, limit: int) -> ShadowCalibrator:
    """A new shadow in the caller's transaction (the admin route, or a re-fit with ``if_better_in_shadow``),
    refused past ``limit`` shadows per version; audited."""
    count = shadow_stats.count_shadows(session=session, model=model, version=version)
    if count >= limit:
        raise ShadowLimitReached(f"model '{model}' version {version} already has {count} shadow calibrators "
                                 f"(the limit is {limit}); take one out first")
    row = shadow_stats.insert_shadow(session=session, model=model, version=version,
                                     calibrator_version=calibrator_version, policy=policy, margin=margin, actor=actor)
    audit.record(session=session, actor=actor, action="shadow", model=model, version=version,
                 detail={"calibrator_version": calibrator_version, "policy": policy, "margin": margin})
    return row


def end_on_activation(session: Session, *, model: str, version: int, calibrator_version: int, actor: str,
                      action: str) -> None:
    """An activated calibrator is no longer a shadow (the lifecycle's hook, in its transaction)."""
    if shadow_stats.delete_shadow(session=session, model=model, version=version,
                                  calibrator_version=calibrator_version):
        audit.record(session=session, actor=actor, action="end_shadow", model=model, version=version,
                     detail={"calibrator_version": calibrator_version, "reason": action})


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _loss(sums: PairedSums, active_sum: float) -> dict[str, Any]:
    mean, lo, hi = paired_interval(sums)
    n = sums.n
    return {"active": _finite(active_sum / n) if n else None,
            "shadow": _finite((active_sum - sums.total) / n) if n else None,
            "difference": _finite(mean), "ci": [_finite(lo), _finite(hi)]}


class ShadowCalibrators:
    def __init__(self, *, sessions: sessionmaker[Session], registry: Registry, max_per_version: int, clip: float,
                 alpha: float, default_window: str, ece_bins: int, bound: str = "bernstein") -> None:
        self.bound = bound
        self.sessions = sessions
        self.registry = registry
        self.max_per_version = max_per_version
        self.clip = clip
        self.alpha = alpha
        self.default_window = default_window
        self.ece_bins = ece_bins

    def put(self, *, model: str, version: str | int, calibrator_version: int, options: ShadowOptions,
            actor: str) -> tuple[dict[str, Any], bool]:
        """(the shadow, created?): a new shadow, or the policy and margin of an existing one changed."""
        v = self.registry.resolve(model, version).version
        with self.sessions() as session:
            row = calibrator_rows.get_calibrator(session=session, model=model, version=v,
                                                 calibrator_version=calibrator_version)
            if row is None:
                raise CalibratorNotFound(f"model '{model}' version {v} has no calibrator {calibrator_version}")
            if row.state == "active":
                raise ShadowOfActive(f"calibrator {calibrator_version} is the active one; only another stored "
                                     "calibrator can be put in shadow")
            try:
                calibrator_from_dict({"method": row.method, "params": row.params})
            except (CalibrationInputError, KeyError, TypeError, ValueError) as exc:
                raise InvalidInput(f"calibrator {calibrator_version} cannot be scored: {exc}") from None
            existing = shadow_stats.get_shadow(session=session, model=model, version=v,
                                               calibrator_version=calibrator_version)
            detail = {"calibrator_version": calibrator_version, "policy": options.policy, "margin": options.margin}
            created = existing is None
            if existing is not None:
                existing.policy, existing.margin = options.policy, options.margin
                audit.record(session=session, actor=actor, action="update_shadow", model=model, version=v,
                             detail=detail)
            else:
                existing = start_shadow(session, model=model, version=v, calibrator_version=calibrator_version,
                                        policy=options.policy, margin=options.margin, actor=actor,
                                        limit=self.max_per_version)
            out = {"model": model, "version": v, **shadow_stats.shadow_public(existing)}
            session.commit()
        return out, created

    def remove(self, *, model: str, version: str | int, calibrator_version: int, actor: str) -> dict[str, Any]:
        v = self.registry.resolve(model, version).version
        with self.sessions() as session:
            if not shadow_stats.delete_shadow(session=session, model=model, version=v,
                                              calibrator_version=calibrator_version):
                raise NotInShadow(f"calibrator {calibrator_version} of model '{model}' version {v} is not in shadow")
            audit.record(session=session, actor=actor, action="end_shadow", model=model, version=v,
                         detail={"calibrator_version": calibrator_version, "reason": "removed"})
            session.commit()
        return {"model": model, "version": v, "calibrator_version": calibrator_version, "in_shadow": False}

    def list(self, *, model: str, version: str | int) -> dict[str, Any]:
        """The version's shadows, each with its promotion evidence against the active calibrator."""
        loaded = self.registry.resolve(model, version)
        active = loaded.serving.calibrator_version if loaded.serving else None
        with read_session(self.sessions) as session:
            out = []
            for s in shadow_stats.list_shadows(session=session, model=model, version=loaded.version):
                out.append({**shadow_stats.shadow_public(s), **self._promotion(session, model, loaded.version, s,
                                                                               active)})
        return {"model": model, "version": loaded.version, "active_calibrator_version": active,
                "max_shadows": self.max_per_version, "shadows": out}

    def _promotion(self, session: Session, model: str, version: int, shadow: Any, active: int | None
                   ) -> dict[str, Any]:
        evidence = Evidence() if active is None else shadow_stats.read_evidence(
            session=session, model=model, version=version, calibrator_version=shadow.calibrator_version,
            active_version=active)
        bound = promotion_bound(evidence, clip=self.clip, alpha=self.alpha, bound=self.bound)
        n = evidence.sums.n
        return {"evidence": {"n": n, "mean_nll_improvement": _finite(evidence.sums.total / n) if n else None,
                             "lower_bound": _finite(bound), "bound": self.bound, "alpha": self.alpha,
                             "clip": self.clip, "margin": shadow.margin,
                             "promotable": shadow.policy == "if_better_in_shadow" and bound > shadow.margin}}

    def compare(self, *, model: str, version: str | int, calibrator_version: int, window: str | None = None,
                start: str | None = None, end: str | None = None, bins: str | None = None,
                against: str | None = None) -> dict[str, Any]:
        """Paired NLL, Brier and ECE differences (active − shadow) over a window, with CIs, both reliability
        diagrams, and the policy's anytime-valid bound since the shadow started."""
        loaded = self.registry.resolve(model, version)
        v = loaded.version
        if against in (None, "", "active"):
            active = loaded.serving.calibrator_version if loaded.serving else None
        elif is_number(against):
            active = parse_int(against, "against", low=1)
        else:
            raise InvalidInput("against must be a calibrator version number or 'active'")
        n_bins = parse_bins(bins, self.ece_bins)
        begin, stop = resolve_window(window, start, end, default=self.default_window, now=datetime.now(UTC))
        with read_session(self.sessions) as session:
            if calibrator_rows.get_calibrator(session=session, model=model, version=v,
                                              calibrator_version=calibrator_version) is None:
                raise CalibratorNotFound(f"model '{model}' version {v} has no calibrator {calibrator_version}")
            if active is None or calibrator_rows.get_calibrator(session=session, model=model, version=v,
                                                                calibrator_version=active) is None:
                raise CalibratorNotFound(f"model '{model}' version {v} has no calibrator {active}")
            w = shadow_stats.read_pair_window(session=session, model=model, version=v,
                                              calibrator_version=calibrator_version, active_version=active,
                                              start=begin, end=stop)
            shadow = shadow_stats.get_shadow(session=session, model=model, version=v,
                                             calibrator_version=calibrator_version)
            promotion = (self._promotion(session, model, v, shadow, active) if shadow is not None
                         else {"evidence": None})
        coarse = w.bins.reshape(w.bins.shape[0], 2, 3, n_bins, FINE_BINS // n_bins).sum(axis=-1)  # (B, side, sums, M)
        ece_a, ece_s, diff, lo, hi = ece_difference(coarse[:, 0], coarse[:, 1], alpha=0.05)
        edges = bin_edges(n_bins)
        total = coarse.sum(axis=0)
        return {
            "model": model, "version": v, "calibrator_version": calibrator_version,
            "active_calibrator_version": active, "in_shadow": shadow is not None,
            "policy": shadow.policy if shadow is not None else None,
            "window": {"start": begin.isoformat(), "end": stop.isoformat()}, "n": w.nll.n, "sign": SIGN,
            "nll": _loss(w.nll, w.nll_active), "brier": _loss(w.brier, w.brier_active),
            "ece": {"active": _finite(ece_a), "shadow": _finite(ece_s), "difference": _finite(diff),
                    "ci": [_finite(lo), _finite(hi)], "n_bins": n_bins, "buckets": int((coarse[:, 0, 0].sum(1) > 0)
                                                                                     .sum()),
                    "ci_method": "basic bootstrap over prediction-time buckets (both sides drawn together); "
                                 "none below 10 labelled buckets"},
            "reliability": {"active": reliability_rows(ReliabilityBins.from_sums(edges, *np.asarray(total[0]))),
                            "shadow": reliability_rows(ReliabilityBins.from_sums(edges, *np.asarray(total[1])))},
            **promotion,
        }
