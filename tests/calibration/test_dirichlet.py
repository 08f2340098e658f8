"""Dirichlet calibration: unregularised it is multinomial logistic regression on log-probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from service.calibration.dirichlet import DirichletCalibrator
from tests.calibration.factories import overconfident_logits


def test_unregularised_equals_sklearn_multinomial_logistic_regression() -> None:
    z, y = overconfident_logits(2000, 4, seed=0)
    features = log_softmax(z, axis=1)
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000).fit(features, y)
    cal = DirichletCalibrator(reg_lambda=0.0, reg_mu=0.0, max_iter=2000).fit(z, y)
    ours = log_loss(y, cal.predict_proba(z), labels=range(4))
    theirs = log_loss(y, reference.predict_proba(features), labels=range(4))
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_odir_shrinks_off_diagonal_weights_and_intercepts() -> None:
    z, y = overconfident_logits(1000, 5, seed=1)
    off = 1 - np.eye(5)
    weak = DirichletCalibrator(reg_lambda=0.0, reg_mu=0.0).fit(z, y)
    strong = DirichletCalibrator(reg_lambda=100.0, reg_mu=100.0).fit(z, y)
    assert np.abs(strong.weight_ * off).sum() < 0.2 * np.abs(weak.weight_ * off).sum()
    assert np.abs(strong.bias_).sum() < np.abs(weak.bias_).sum()


def test_identity_weights_reproduce_the_softmax() -> None:
    z, y = overconfident_logits(50, 3, seed=2)
    cal = DirichletCalibrator().fit(z, y)
    cal.weight_, cal.bias_ = np.eye(3), np.zeros(3)
    np.testing.assert_allclose(cal.predict_proba(z), np.exp(log_softmax(z, axis=1)), atol=1e-12)
