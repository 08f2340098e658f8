"""Histogram binning and isotonic regression (one-vs-rest, renormalised) against sklearn and by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from service.calibration.binning import HistogramBinning, IsotonicCalibrator
from tests.calibration.factories import overconfident_logits, softmax


@pytest.mark.parametrize("k", [2, 5, 20])
def test_isotonic_matches_sklearn_per_class(k: int) -> None:
    z, y = overconfident_logits(3000, k, seed=k)
    z_new, _ = overconfident_logits(1000, k, seed=100 + k)
    q, q_new = softmax(z), softmax(z_new)
    expected = np.column_stack(
        [
            IsotonicRegression(out_of_bounds="clip", y_min=None, y_max=None)
            .fit(q[:, c], (y == c).astype(float))
            .predict(q_new[:, c])
            for c in range(k)
        ]
    )
    expected = np.maximum(expected, 1e-12)
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(IsotonicCalibrator().fit(z, y).predict_proba(z_new), expected, atol=1e-12)


def test_isotonic_pools_tied_scores() -> None:
    z = np.log(np.array([[0.3, 0.7], [0.3, 0.7], [0.6, 0.4], [0.8, 0.2]]))
    y = np.array([0, 1, 0, 0])
    p = IsotonicCalibrator().fit(z, y).predict_proba(z)
    assert p[0, 0] == pytest.approx(p[1, 0])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_histogram_binning_by_hand() -> None:
    # M = 2. Class 1 (q = .1, .1, .9, .9, .9; y = 1 at rows 0, 2, 3): bin (0, .5] → 1/2, (.5, 1] → 2/3.
    # Class 0 (q = .9, .9, .1, .1, .1; y = 0 at rows 1, 4): bin (0, .5] → 1/3, (.5, 1] → 1/2.
    p1 = np.array([0.1, 0.1, 0.9, 0.9, 0.9])
    z = np.log(np.stack([1 - p1, p1], axis=1))
    y = np.array([1, 0, 1, 1, 0])
    cal = HistogramBinning(n_bins=2).fit(z, y)
    np.testing.assert_allclose(cal.values_, [[1 / 3, 1 / 2], [1 / 2, 2 / 3]])
    out = cal.predict_proba(np.log([[0.2, 0.8]]))  # class 0 → 1/3, class 1 → 2/3, already summing to 1
    np.testing.assert_allclose(out, [[1 / 3, 2 / 3]])


def test_histogram_empty_bins_use_their_centre_and_rows_stay_finite() -> None:
    z, y = overconfident_logits(200, 3, seed=1)
    cal = HistogramBinning(n_bins=50).fit(z, y)
    assert np.isfinite(cal.values_).all()
    p = cal.predict_proba(z)
    assert np.isfinite(np.log(p)).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
