"""The method table: every calibrator round-trips through JSON, argmax-preserving ones keep the argmax."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from service.calibration import (
    CALIBRATORS,
    CalibrationInputError,
    Calibrator,
    calibrator_from_dict,
    logits_from_probabilities,
    make_calibrator,
)
from service.calibration.base import NotFittedError
from tests.calibration.factories import overconfident_logits


def fitted(name: str, k: int = 4) -> Calibrator:
    z, y = overconfident_logits(600, 2 if name == "platt" else k, seed=1)
    return make_calibrator(name).fit(z, y)


def test_the_table_lists_every_method_by_its_own_name() -> None:
    assert set(CALIBRATORS) == {
        "identity", "temperature", "focal_temperature", "vector", "dirichlet",
        "histogram", "isotonic", "platt", "auto",
    }  # fmt: skip
    for name, cls in CALIBRATORS.items():
        assert cls.method == name
        assert isinstance(cls.preserves_argmax, bool)
        assert isinstance(make_calibrator(name), Calibrator)


@pytest.mark.parametrize("name", sorted(CALIBRATORS))
def test_round_trip_gives_identical_predictions(name: str) -> None:
    cal = fitted(name)
    data = json.loads(json.dumps(cal.to_dict()))  # plain JSON types only
    assert data["method"] == name
    again = calibrator_from_dict({**data, "evaluation": {"ece": 0.01}})  # extra keys are ignored
    z, _ = overconfident_logits(200, 2 if name == "platt" else 4, seed=2)
    np.testing.assert_array_equal(again.predict_proba(z), cal.predict_proba(z))
    p = cal.predict_proba(z)
    assert p.dtype == np.float64 and p.shape == z.shape
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CALIBRATORS))
def test_unfitted_calibrators_say_so(name: str) -> None:
    if name == "identity":
        return
    with pytest.raises(NotFittedError, match="not fitted"):
        make_calibrator(name).predict_proba(np.zeros((1, 2)))


PRESERVING = sorted(name for name, cls in CALIBRATORS.items() if cls.preserves_argmax)


@functools.cache
def fitted_preserving(name: str) -> Calibrator:
    return fitted(name, k=5)


logit_rows = arrays(np.float64, st.tuples(st.integers(1, 8), st.just(5)), elements=st.floats(-50, 50))


@settings(max_examples=60, deadline=None)
@given(z=logit_rows, name=st.sampled_from(PRESERVING))
def test_argmax_preserving_calibrators_never_change_the_argmax(z: np.ndarray, name: str) -> None:
    top2 = np.sort(z, axis=1)[:, -2:]
    z = z[top2[:, 1] - top2[:, 0] > 1e-9]  # exact ties have no unique argmax
    if z.shape[0]:
        np.testing.assert_array_equal(fitted_preserving(name).predict_proba(z).argmax(axis=1), z.argmax(axis=1))


@settings(max_examples=60, deadline=None)
@given(
    z=logit_rows,
    t=st.floats(0.05, 20.0),
    gamma=st.sampled_from([-1.0, -0.75, -0.5, -0.25, 0.0, 0.5, 1.0, 3.0, 5.0, 10.0]),
)
def test_focal_temperature_keeps_the_argmax_for_any_parameters(z: np.ndarray, t: float, gamma: float) -> None:
    top2 = np.sort(z, axis=1)[:, -2:]
    z = z[(top2[:, 1] - top2[:, 0]) / t > 1e-6]  # a gap the scaled logits can still resolve
    cal = calibrator_from_dict({"method": "focal_temperature", "params": {"temperature": t, "gamma": gamma}})
    if z.shape[0]:
        np.testing.assert_array_equal(cal.predict_proba(z).argmax(axis=1), z.argmax(axis=1))


def test_unknown_method_and_bad_parameters() -> None:
    with pytest.raises(CalibrationInputError, match="unknown calibration method 'magic'"):
        make_calibrator("magic")
    with pytest.raises(CalibrationInputError, match="bad parameters"):
        make_calibrator("temperature", tmax=3)
    with pytest.raises(CalibrationInputError, match="unknown calibration method"):
        calibrator_from_dict({"params": {}})
    with pytest.raises(CalibrationInputError, match="malformed 'temperature'"):
        calibrator_from_dict({"method": "temperature", "params": {}})


def test_logits_from_probabilities_round_trips_through_identity() -> None:
    p = np.array([[0.2, 0.8], [1.0, 0.0]])
    np.testing.assert_allclose(logits_from_probabilities(p), np.log(np.clip(p, 1e-12, 1)))
    out = make_calibrator("identity").predict_proba(logits_from_probabilities(p))
    np.testing.assert_allclose(out, p, atol=1e-11)
