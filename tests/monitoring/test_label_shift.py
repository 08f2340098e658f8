"""The label-shift verdict: no alarm on unshifted traffic, an alarm on a clear shift, none on too few rows."""

from __future__ import annotations

import numpy as np

from service.monitoring.label_shift import label_shift_report, reference_prior


def _posteriors(n: int, prior: np.ndarray, seed: int) -> np.ndarray:
    """Calibrated posteriors of a 3-class Gaussian world with class prior ``prior`` (Bayes rule under a
    uniform training prior, then shifted by the true prior: exactly calibrated for that prior)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(3, size=n, p=prior)
    x = rng.normal(loc=np.array([-1.5, 0.0, 1.5])[y], scale=1.0)
    lik = np.exp(-0.5 * (x[:, None] - np.array([-1.5, 0.0, 1.5])) ** 2)
    return lik / lik.sum(axis=1, keepdims=True)  # posteriors under the uniform training prior


def test_unshifted_traffic_is_ok_and_a_shift_alarms() -> None:
    uniform = np.full(3, 1 / 3)
    ref = reference_prior(_posteriors(5_000, uniform, seed=0))
    calm = label_shift_report(_posteriors(1_000, uniform, seed=1), ref, tolerance=0.05)
    assert calm["state"] == "ok" and calm["tv"] <= 0.05 + calm["tv_noise"]
    lo, hi = np.array(calm["prior_ci"])
    assert np.all(lo <= calm["prior"]) and np.all(np.array(calm["prior"]) <= hi)
    shifted = label_shift_report(_posteriors(1_000, np.array([0.7, 0.2, 0.1]), seed=2), ref, tolerance=0.05)
    assert shifted["state"] == "shifted"
    assert shifted["prior"][0] > 0.6 and shifted["tv"] > 0.3  # true TV to uniform is 0.367


def test_too_few_rows_give_no_verdict() -> None:
    out = label_shift_report(_posteriors(50, np.full(3, 1 / 3), seed=3), np.full(3, 1 / 3), tolerance=0.05)
    assert out["state"] == "insufficient_predictions" and out["prior"] is None and out["n"] == 50


def test_false_alarm_rate_on_calm_traffic_is_small() -> None:
    """30 calm samples of 500 rows (a poorly identified middle class): at most a few alarms at the 5% test."""
    uniform = np.full(3, 1 / 3)
    ref = reference_prior(_posteriors(20_000, uniform, seed=100))
    alarms = sum(label_shift_report(_posteriors(500, uniform, seed=s), ref, tolerance=0.0, n_boot=100)["state"]
                 == "shifted" for s in range(30))
    assert alarms <= 4  # binomial(30, 0.05): P(≥ 5) ≈ 1.6%


def test_scope_label_shift_reads_the_prediction_log(database_url: str) -> None:
    """Stored predictions: a calm first hour (the reference), then traffic whose class mix moved."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from service.db.stats import Scope
    from service.monitoring.label_shift import scope_label_shift
    from tests.monitoring.stored import store_predictions

    engine = create_engine(database_url)
    t0 = datetime(2026, 4, 1, tzinfo=UTC)
    store_predictions(engine, _posteriors(600, np.full(3, 1 / 3), seed=20), t0)
    store_predictions(engine, _posteriors(600, np.array([0.75, 0.15, 0.1]), seed=21), t0 + timedelta(hours=2))
    scope = Scope("digits", 1, 1)
    with Session(engine) as session:
        kw = {"activated_at": t0, "rows": 500, "tolerance": 0.02}
        shifted = scope_label_shift(session, scope, start=t0 + timedelta(hours=1), end=t0 + timedelta(hours=3), **kw)
        calm = scope_label_shift(session, scope, start=t0, end=t0 + timedelta(hours=1), **kw)
        none = scope_label_shift(session, Scope("digits", 1, None), start=t0, end=t0 + timedelta(hours=3), **kw)
    engine.dispose()
    assert shifted["state"] == "shifted" and shifted["n"] == 500 and shifted["reference_rows"] == 500
    assert shifted["prior"][0] > 0.6
    assert calm["state"] == "ok"
    assert none["state"] == "no_reference"
