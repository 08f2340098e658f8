"""Platt scaling (libsvm sigmoid_train) against scikit-learn's sigmoid calibration."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import _sigmoid_calibration

from service.calibration import CalibrationInputError
from service.calibration.platt import PlattScaling, sigmoid_train


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_sigmoid_calibration(seed: int) -> None:
    # Both minimise the same smoothed-target cross-entropy (sklearn with L-BFGS, we with Newton).
    rng = np.random.default_rng(seed)
    f = rng.normal(size=800) * 2
    y = (rng.random(800) < 1 / (1 + np.exp(-1.5 * f + 0.3))).astype(float)
    a, b = sigmoid_train(f, y)
    ref_a, ref_b = _sigmoid_calibration(f, y)
    assert a == pytest.approx(ref_a, abs=1e-6) and b == pytest.approx(ref_b, abs=1e-6)
    assert a < 0  # libsvm's sign convention


def test_predicts_from_the_logit_difference() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(size=(500, 2)) * 2
    y = (rng.random(500) < 1 / (1 + np.exp(-(z[:, 1] - z[:, 0])))).astype(int)
    cal = PlattScaling().fit(z, y)
    p = cal.predict_proba(z)
    expected = 1 / (1 + np.exp(cal.a_ * (z[:, 1] - z[:, 0]) + cal.b_))
    np.testing.assert_allclose(p[:, 1], expected, atol=1e-14)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-15)


def test_rejects_multiclass() -> None:
    with pytest.raises(CalibrationInputError, match="binary"):
        PlattScaling().fit(np.zeros((10, 3)), np.arange(10) % 3)
