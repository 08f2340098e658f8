"""Shadow calibrators in the database: the shadow set, per-bucket paired sums and bins, and the evidence.

The statistics tables are additive like every other monitoring table (``stats.add_sums``: an upsert that
adds), keyed by the bucket of the **prediction** time. They have no roll-ups (a comparison reads fine buckets
over its window; the promotion policy reads ``shadow_evidence``, one row per pair) and they are never read by
the calibration window, the Prometheus counters or the drift verdicts, which read ``calibration_stats``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from service.calibration.paired import PairedSums
from service.calibration.shadow_compare import Evidence, PairScore
from service.calibration.streaming import FINE_BINS
from service.db.stats import KEY, add_sums, as_utc
from service.db.tables import ShadowCalibrator, ShadowEvidence, ShadowPairBin, ShadowPairStat

PAIR_SUMS = ("count", "nll_sum", "nll_sq_sum", "nll_clipped_sum", "brier_sum", "brier_sq_sum", "brier_clipped_sum",
             "nll_active_sum", "brier_active_sum")
BIN_SUMS = ("count", "confidence_sum", "correct_sum")
EVIDENCE_KEY = ("model", "version", "calibrator_version", "active_version")
EVIDENCE_SUMS = ("count", "nll_sum", "nll_sq_sum", "nll_clipped_sum", "nll_clipped_sq_sum")


# ---- the shadow set -------------------------------------------------------------------------------------
def list_shadows(*, session: Session, model: str | None = None, version: int | None = None) -> list[ShadowCalibrator]:
    q = select(ShadowCalibrator).order_by(ShadowCalibrator.model, ShadowCalibrator.version,
                                          ShadowCalibrator.calibrator_version)
    if model is not None:
        q = q.where(ShadowCalibrator.model == model)
    if version is not None:
        q = q.where(ShadowCalibrator.version == version)
    return list(session.scalars(q))


def get_shadow(*, session: Session, model: str, version: int, calibrator_version: int) -> ShadowCalibrator | None:
    return session.get(ShadowCalibrator, (model, version, calibrator_version))


def count_shadows(*, session: Session, model: str, version: int) -> int:
    return int(session.scalar(select(func.count()).select_from(ShadowCalibrator).where(
        ShadowCalibrator.model == model, ShadowCalibrator.version == version)) or 0)


def insert_shadow(*, session: Session, model: str, version: int, calibrator_version: int, policy: str,
                  margin: float, actor: str) -> ShadowCalibrator:
    """A new shadow, with its promotion evidence started afresh (what came before is another experiment)."""
    clear_evidence(session=session, model=model, version=version, calibrator_version=calibrator_version)
    row = ShadowCalibrator(model=model, version=version, calibrator_version=calibrator_version, policy=policy,
                           margin=margin, started_at=datetime.now(UTC), started_by=actor)
    session.add(row)
    session.flush()
    return row


def delete_shadow(*, session: Session, model: str, version: int, calibrator_version: int) -> bool:
    """End a shadow (its per-bucket statistics stay, for comparisons of past windows). True if it was one."""
    row = get_shadow(session=session, model=model, version=version, calibrator_version=calibrator_version)
    if row is None:
        return False
    session.delete(row)
    clear_evidence(session=session, model=model, version=version, calibrator_version=calibrator_version)
    session.flush()
    return True


def clear_evidence(*, session: Session, model: str, version: int, calibrator_version: int) -> None:
    e = ShadowEvidence
    session.execute(delete(e).where(e.model == model, e.version == version, e.calibrator_version == calibrator_version))


# ---- statistics ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairKey:
    model: str
    version: int
    shadow: int
    active: int
    bucket: datetime


def add_pair_scores(session: Session, scores: dict[PairKey, PairScore]) -> None:
    """Per-bucket paired sums, both sides' fine bins, and the per-pair evidence: one additive upsert each."""
    pairs, bins = [], []
    evidence: dict[tuple[str, int, int, int], Evidence] = defaultdict(Evidence)
    for k, s in scores.items():
        base = {"model": k.model, "version": k.version, "calibrator_version": k.shadow, "bucket": k.bucket,
                "active_version": k.active}
        pairs.append({**base, "count": s.nll.n, "nll_sum": s.nll.total, "nll_sq_sum": s.nll.squares,
                      "nll_clipped_sum": s.nll.clipped, "brier_sum": s.brier.total, "brier_sq_sum": s.brier.squares,
                      "brier_clipped_sum": s.brier.clipped, "nll_active_sum": s.nll_active,
                      "brier_active_sum": s.brier_active})
        for side, b in ((0, s.active_bins), (1, s.shadow_bins)):
            for m in np.flatnonzero(b.count):
                bins.append({**base, "side": side, "bin": int(m), "count": float(b.count[m]),
                             "confidence_sum": float(b.confidence_sum[m]), "correct_sum": float(b.correct_sum[m])})
        evidence[(k.model, k.version, k.shadow, k.active)] += s.evidence
    add_sums(session, ShadowPairStat, pairs, (*KEY, "active_version"), PAIR_SUMS)
    add_sums(session, ShadowPairBin, bins, (*KEY, "active_version", "side", "bin"), BIN_SUMS)
    add_sums(session, ShadowEvidence,
             [{**dict(zip(EVIDENCE_KEY, key, strict=True)), "count": e.sums.n, "nll_sum": e.sums.total,
               "nll_sq_sum": e.sums.squares, "nll_clipped_sum": e.sums.clipped, "nll_clipped_sq_sum": e.clipped_squares}
              for key, e in evidence.items()], EVIDENCE_KEY, EVIDENCE_SUMS)


def read_evidence(*, session: Session, model: str, version: int, calibrator_version: int,
                  active_version: int) -> Evidence:
    e = ShadowEvidence
    row = session.execute(select(e.count, e.nll_sum, e.nll_sq_sum, e.nll_clipped_sum, e.nll_clipped_sq_sum).where(
        e.model == model, e.version == version, e.calibrator_version == calibrator_version,
        e.active_version == active_version)).first()
    if row is None:
        return Evidence()
    n, total, squares, clipped, clipped_sq = (float(v) for v in row)
    return Evidence(PairedSums(n, total, squares, clipped), clipped_sq)


@dataclass
class PairWindow:
    """One pair's statistics over a window: summed paired sums, and per bucket both sides' fine bins."""

    nll: PairedSums
    brier: PairedSums
    nll_active: float
    brier_active: float
    bins: np.ndarray  # (B, 2 sides, 3 sums, FINE_BINS): count, Σ confidence, Σ correct per labelled bucket


def read_pair_window(*, session: Session, model: str, version: int, calibrator_version: int, active_version: int,
                     start: datetime, end: datetime) -> PairWindow:
    p, b = ShadowPairStat, ShadowPairBin
    where = [p.model == model, p.version == version, p.calibrator_version == calibrator_version,
             p.active_version == active_version, p.bucket >= start, p.bucket < end]
    sums = session.execute(select(*[func.coalesce(func.sum(getattr(p, c)), 0.0) for c in PAIR_SUMS])
                           .where(*where)).one()
    n, nll, nll_sq, nll_clip, brier, brier_sq, brier_clip, nll_active, brier_active = (float(v) for v in sums)
    rows = session.execute(select(b.bucket, b.side, b.bin, b.count, b.confidence_sum, b.correct_sum).where(
        b.model == model, b.version == version, b.calibrator_version == calibrator_version,
        b.active_version == active_version, b.bucket >= start, b.bucket < end))
    per_bucket: dict[datetime, np.ndarray] = {}
    for bucket, side, m, count, conf, correct in rows:
        arr = per_bucket.setdefault(as_utc(bucket), np.zeros((2, 3, FINE_BINS)))
        arr[int(side), :, int(m)] = (float(count), float(conf), float(correct))
    bins = (np.stack([per_bucket[k] for k in sorted(per_bucket)]) if per_bucket
            else np.zeros((0, 2, 3, FINE_BINS)))
    return PairWindow(PairedSums(n, nll, nll_sq, nll_clip), PairedSums(n, brier, brier_sq, brier_clip),
                      nll_active, brier_active, bins)


def shadow_public(row: ShadowCalibrator) -> dict[str, Any]:
    return {"calibrator_version": row.calibrator_version, "policy": row.policy, "margin": row.margin,
            "started_at": as_utc(row.started_at).isoformat(), "started_by": row.started_by}
