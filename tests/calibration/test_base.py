"""Input checks shared by every calibrator: bad input raises CalibrationInputError with a clear message."""

from __future__ import annotations

import numpy as np
import pytest

from service.calibration import CalibrationInputError, make_calibrator


@pytest.mark.parametrize(
    ("logits", "labels", "message"),
    [
        (np.array([[0.0, np.nan], [1.0, 0.0]]), np.array([0, 1]), "NaN or infinite"),
        (np.array([[0.0, np.inf], [1.0, 0.0]]), np.array([0, 1]), "NaN or infinite"),
        (np.zeros(4), np.array([0, 1, 0, 1]), "2-D array"),
        (np.zeros((4, 2)), np.array([0, 1, 0, 2]), r"labels must lie in \[0, 1\]"),
        (np.zeros((4, 2)), np.array([0, 1, 0, -1]), r"labels must lie in \[0, 1\]"),
        (np.zeros((4, 2)), np.array([0, 1, 0]), "length 4"),
        (np.zeros((4, 2)), np.array([0.0, 1.5, 0.0, 1.0]), "integers"),
        (np.zeros((4, 2)), np.array(["a", "b", "a", "b"]), "integers"),
        (np.zeros((1, 2)), np.array([0]), "too few samples"),
        (np.zeros((4, 2)), np.array([1, 1, 1, 1]), "single class"),
        (np.zeros((4, 1)), np.array([0, 0, 0, 0]), "at least 2 classes"),
        ([["a", "b"], ["c", "d"]], np.array([0, 1]), "numeric array"),
    ],
)
@pytest.mark.parametrize("method", ["identity", "temperature", "focal_temperature", "vector", "isotonic"])
def test_bad_fit_input(method: str, logits: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(CalibrationInputError, match=message):
        make_calibrator(method).fit(logits, labels)


def test_integral_float_labels_are_accepted() -> None:
    z = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 1.0]])
    cal = make_calibrator("temperature").fit(z, np.array([0.0, 1.0, 0.0, 1.0]))
    assert cal.predict_proba(z).shape == (4, 2)


def test_bad_predict_input() -> None:
    z = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 1.0]])
    cal = make_calibrator("temperature").fit(z, [0, 1, 1, 0])
    with pytest.raises(CalibrationInputError, match="NaN"):
        cal.predict_proba([[np.nan, 0.0]])
    with pytest.raises(CalibrationInputError, match="2-D"):
        cal.predict_proba([1.0, 2.0])
