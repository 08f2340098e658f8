"""Temperature scaling against a dense grid search, netcal, and a known generating temperature."""

from __future__ import annotations

import numpy as np
import pytest
from netcal.scaling import TemperatureScaling as NetcalTemperatureScaling
from scipy.special import log_softmax

from service.calibration import make_calibrator, metrics
from service.calibration.temperature import TemperatureScaling
from tests.calibration.factories import overconfident_logits, softmax


def nll_at(z: np.ndarray, y: np.ndarray, t: float) -> float:
    return float(-log_softmax(z / t, axis=1)[np.arange(len(y)), y].mean())


@pytest.mark.parametrize(("k", "true_t"), [(2, 0.7), (10, 1.5), (100, 2.5)])
def test_matches_dense_grid_search(k: int, true_t: float) -> None:
    z, y = overconfident_logits(1500, k, seed=k, temperature=true_t)
    cal = TemperatureScaling().fit(z, y)
    coarse = np.exp(np.linspace(np.log(0.05), np.log(10.0), 201))
    centre = coarse[np.argmin([nll_at(z, y, t) for t in coarse])]
    grid = centre * np.exp(np.linspace(-0.03, 0.03, 601))  # then 1e-4-wide steps around the best
    values = np.array([nll_at(z, y, t) for t in grid])
    ours = nll_at(z, y, cal.temperature_)
    assert ours <= values.min() + 1e-9
    assert ours == pytest.approx(values.min(), abs=1e-4)
    assert cal.temperature_ == pytest.approx(grid[values.argmin()], rel=2e-4)


def test_recovers_the_generating_temperature() -> None:
    z, y = overconfident_logits(50_000, 10, seed=0, temperature=1.5)
    assert TemperatureScaling().fit(z, y).temperature_ == pytest.approx(1.5, rel=0.03)


def test_at_least_as_good_as_netcal() -> None:
    z, y = overconfident_logits(5000, 10, seed=1)
    ours = make_calibrator("temperature").fit(z, y).predict_proba(z)
    netcal = NetcalTemperatureScaling().fit(softmax(z), y).transform(softmax(z))
    assert metrics.nll(ours, y) <= metrics.nll(netcal, y) + 1e-7


def test_separable_data_stops_at_the_bound() -> None:
    y = np.arange(40) % 4
    z = np.eye(4)[y] * 5.0  # every row correct with a margin: NLL falls as T → 0
    assert TemperatureScaling(t_min=0.05).fit(z, y).temperature_ == 0.05


def test_predictions_are_probabilities_and_keep_the_argmax() -> None:
    z, y = overconfident_logits(300, 7, seed=3)
    p = TemperatureScaling().fit(z, y).predict_proba(z)
    assert p.dtype == np.float64 and p.shape == z.shape
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(p.argmax(axis=1), z.argmax(axis=1))


def test_predict_is_plain_softmax_of_scaled_logits() -> None:
    z, y = overconfident_logits(200, 5, seed=4)
    cal = TemperatureScaling().fit(z, y)
    np.testing.assert_allclose(cal.predict_proba(z), softmax(z / cal.temperature_), atol=1e-15)
