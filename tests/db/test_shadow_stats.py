"""Shadow tables on both databases: pair statistics add up across commits and buckets, a window reads only
its buckets and its pair, the evidence is one row per (shadow, serving calibrator) and restarts with a new
shadow; the shadow set's primary key refuses a second row for the same calibrator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy.exc import IntegrityError

from service.calibration.shadow_compare import score_pair
from service.db import shadow_stats
from service.db.engine import make_engine, make_sessionmaker
from service.db.tables import ShadowCalibrator

T0 = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _probs(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    z = rng.normal(size=(n, 3)) * scale
    e = np.exp(z - z.max(1, keepdims=True))
    out: np.ndarray = e / e.sum(1, keepdims=True)
    return out


def test_pair_statistics_add_and_window(database_url: str) -> None:
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    rng = np.random.default_rng(0)
    pa, ps, y = _probs(rng, 90, 3.0), _probs(rng, 90, 1.0), rng.integers(0, 3, 90)
    parts = [slice(0, 30), slice(30, 60), slice(60, 90)]
    buckets = [T0, T0, T0 + timedelta(minutes=1)]  # two commits into one bucket, one into the next
    for part, bucket in zip(parts, buckets, strict=True):
        with sessions() as session:
            key = shadow_stats.PairKey("m", 1, 3, 2, bucket)
            shadow_stats.add_pair_scores(session, {key: score_pair(pa[part], ps[part], y[part], clip=2.0)})
            session.commit()
    whole = score_pair(pa, ps, y, clip=2.0)
    with sessions() as session:
        w = shadow_stats.read_pair_window(session=session, model="m", version=1, calibrator_version=3,
                                          active_version=2, start=T0, end=T0 + timedelta(hours=1))
        first = shadow_stats.read_pair_window(session=session, model="m", version=1, calibrator_version=3,
                                              active_version=2, start=T0, end=T0 + timedelta(minutes=1))
        other = shadow_stats.read_pair_window(session=session, model="m", version=1, calibrator_version=3,
                                              active_version=1, start=T0, end=T0 + timedelta(hours=1))
        evidence = shadow_stats.read_evidence(session=session, model="m", version=1, calibrator_version=3,
                                              active_version=2)
    assert w.nll.n == 90 and w.nll.total == pytest.approx(whole.nll.total, rel=1e-12)
    assert w.nll.squares == pytest.approx(whole.nll.squares, rel=1e-12)
    assert w.brier.clipped == pytest.approx(whole.brier.clipped, rel=1e-12)
    assert w.nll_active == pytest.approx(whole.nll_active, rel=1e-12)
    assert w.bins.shape == (2, 2, 3, 300)  # two buckets, two sides, three sums, fine bins
    assert np.allclose(w.bins.sum(axis=0)[0], [whole.active_bins.count, whole.active_bins.confidence_sum,
                                               whole.active_bins.correct_sum])
    assert np.allclose(w.bins.sum(axis=0)[1, 0], whole.shadow_bins.count)
    assert first.nll.n == 60 and other.nll.n == 0 and other.bins.shape[0] == 0
    assert evidence.sums.n == 90 and evidence.sums.total == pytest.approx(whole.nll.total, rel=1e-12)
    assert evidence.sums.clipped == pytest.approx(whole.nll.clipped, rel=1e-12)
    assert evidence.clipped_squares == pytest.approx(whole.nll_clipped_squares, rel=1e-12)

    with sessions() as session:  # a new shadow of the same calibrator starts its evidence afresh
        shadow_stats.insert_shadow(session=session, model="m", version=1, calibrator_version=3, policy="never",
                                   margin=0.0, actor="t")
        session.commit()
        assert shadow_stats.read_evidence(session=session, model="m", version=1, calibrator_version=3,
                                          active_version=2).sums.n == 0
        assert shadow_stats.count_shadows(session=session, model="m", version=1) == 1
        session.add(ShadowCalibrator(model="m", version=1, calibrator_version=3, policy="never", margin=0.0,
                                     started_at=T0, started_by="t"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        assert shadow_stats.delete_shadow(session=session, model="m", version=1, calibrator_version=3)
        assert not shadow_stats.delete_shadow(session=session, model="m", version=1, calibrator_version=3)
        session.commit()
        # the per-bucket statistics outlive the shadow (compare can still read past windows)
        assert shadow_stats.read_pair_window(session=session, model="m", version=1, calibrator_version=3,
                                             active_version=2, start=T0, end=T0 + timedelta(hours=1)).nll.n == 90
    engine.dispose()
