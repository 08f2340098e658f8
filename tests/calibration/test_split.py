"""The seeded stratified split."""

from __future__ import annotations

import numpy as np
import pytest

from service.calibration import CalibrationInputError
from service.calibration.split import stratified_split


def test_parts_are_disjoint_cover_everything_and_are_stratified() -> None:
    y = np.repeat(np.arange(4), [100, 50, 20, 3])
    fit_idx, eval_idx = stratified_split(y, test_size=0.3, seed=0)
    assert np.intersect1d(fit_idx, eval_idx).size == 0
    np.testing.assert_array_equal(np.sort(np.r_[fit_idx, eval_idx]), np.arange(y.size))
    np.testing.assert_array_equal(np.bincount(y[eval_idx]), [30, 15, 6, 1])


def test_seeded_and_shuffled() -> None:
    y = np.arange(1000) % 3
    a = stratified_split(y, seed=1)
    b = stratified_split(y, seed=1)
    c = stratified_split(y, seed=2)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert not np.array_equal(a[1], np.arange(a[1].size))


def test_singletons_stay_in_the_fit_part() -> None:
    y = np.array([0, 0, 0, 0, 1])
    fit_idx, eval_idx = stratified_split(y, test_size=0.5)
    assert 4 in fit_idx and eval_idx.size == 2


def test_bad_test_size() -> None:
    with pytest.raises(CalibrationInputError, match="test_size"):
        stratified_split(np.zeros(10, dtype=int), test_size=1.0)
