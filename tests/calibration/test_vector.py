"""Vector scaling against an independent NLL minimisation and a known generating process."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import log_softmax

from service.calibration import make_calibrator
from service.calibration.vector import VectorScaling
from tests.calibration.factories import overconfident_logits, sample_labels, softmax


def vector_nll(x: np.ndarray, z: np.ndarray, y: np.ndarray) -> float:
    k = z.shape[1]
    return float(-log_softmax(z * x[:k] + x[k:], axis=1)[np.arange(len(y)), y].mean())


def test_matches_an_independent_minimisation() -> None:
    z, y = overconfident_logits(1500, 4, seed=0)
    cal = VectorScaling().fit(z, y)
    # Nelder–Mead with numerical values only: nothing shared with the analytic-gradient fit.
    start = np.r_[np.ones(4), np.zeros(4)]
    ref = minimize(vector_nll, start, args=(z, y), method="Powell", options={"xtol": 1e-8, "ftol": 1e-12})
    ours = vector_nll(np.r_[cal.weight_, cal.bias_], z, y)
    assert ours <= ref.fun + 1e-7
    assert ours == pytest.approx(ref.fun, abs=1e-6)


def test_recovers_known_weights_and_biases() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(40_000, 3)) * 2
    w, b = np.array([0.5, 1.0, 1.5]), np.array([0.3, -0.2, 0.0])
    y = sample_labels(softmax(z * w + b), rng)
    cal = VectorScaling().fit(z, y)
    np.testing.assert_allclose(cal.weight_, w, atol=0.05)
    np.testing.assert_allclose(cal.bias_ - cal.bias_.mean(), b - b.mean(), atol=0.05)  # b up to a shift


def test_no_worse_than_temperature_scaling_on_its_fit_set() -> None:
    z, y = overconfident_logits(2000, 10, seed=2)
    ts = make_calibrator("temperature").fit(z, y)
    vs = make_calibrator("vector").fit(z, y)
    k = z.shape[1]
    assert (
        vector_nll(np.r_[vs.weight_, vs.bias_], z, y)
        <= vector_nll(np.r_[np.full(k, 1 / ts.temperature_), np.zeros(k)], z, y) + 1e-9
    )
