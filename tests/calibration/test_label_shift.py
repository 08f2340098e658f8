"""Saerens EM prior against QuaPy's EMQ and abstention's EMImbalanceAdapter on simulated label shifts of the
demo data (the digits model's calibrated posteriors), plus a case solved by root finding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from abstention.label_shift import EMImbalanceAdapter
from quapy.method.aggregative import EMQ
from scipy.optimize import brentq

from service.calibration import calibrator_from_dict
from service.calibration.label_shift import bootstrap_priors, em_prior, total_variation


@pytest.fixture(scope="module")
def demo_posteriors(trained_repository: Path) -> tuple[np.ndarray, np.ndarray]:
    """(calibrated posteriors, labels) of the demo model on its validation + test rows."""
    from service.repository.registry import load_version
    from service.training.data import load_bundled, split_dataset

    model_dir = trained_repository / "digits" / "1"
    loaded = load_version(model_dir)
    calibrator = calibrator_from_dict(json.loads((model_dir / "calibrator.json").read_text()))
    split = split_dataset(load_bundled("digits"), seed=0)
    x = np.concatenate([split.X_val, split.X_test]).astype(np.float64)
    y = np.concatenate([split.y_val, split.y_test])
    return calibrator.predict_proba(loaded.classifier.scores(x)), y


def shifted_sample(probs: np.ndarray, labels: np.ndarray, weights: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Rows drawn with probability ∝ w_{y_i}: P(x|y) kept, the class prior re-weighted (label shift)."""
    p = weights[labels] / weights[labels].sum()
    return probs[np.random.default_rng(seed).choice(len(labels), size=n, p=p)]


SHIFTS = {
    "none": np.ones(10),
    "three classes ×5": np.where(np.isin(np.arange(10), [1, 8, 9]), 5.0, 1.0),
    "one class absent": np.where(np.arange(10) == 3, 0.0, 1.0),
    "skewed": np.geomspace(1.0, 20.0, 10),
}


@pytest.mark.parametrize("shift", list(SHIFTS))
def test_em_prior_matches_quapy_and_abstention(demo_posteriors: tuple[np.ndarray, np.ndarray], shift: str) -> None:
    probs, labels = demo_posteriors
    target = shifted_sample(probs, labels, SHIFTS[shift], 1_500, seed=len(shift))
    train = probs.mean(axis=0)  # abstention's convention: the mean calibrated posterior of the source rows
    ours = em_prior(target, train, tol=1e-13)
    assert ours.converged
    quapy_prior, quapy_post = EMQ.EM(train, target, epsilon=1e-13)
    np.testing.assert_allclose(ours.prior, quapy_prior, atol=1e-9)
    np.testing.assert_allclose(ours.posteriors, quapy_post, atol=1e-8)
    adapter = EMImbalanceAdapter(tolerance=1e-13, max_iterations=100_000)
    shifted = adapter(tofit_initial_posterior_probs=target, valid_posterior_probs=probs)
    np.testing.assert_allclose(ours.posteriors, shifted(target), atol=1e-7)
    # and it estimates the truth: the target's class frequencies, within the sampling noise of 1,500 rows
    truth = np.bincount(labels, weights=SHIFTS[shift][labels], minlength=10)
    assert total_variation(ours.prior, truth / truth.sum()) < 0.08


def test_em_prior_binary_fixed_point_by_root_finding() -> None:
    # two rows, training prior ½/½: the fixed point solves 1 = ½[0.9/(0.1 + 0.8q) + 0.3/(0.7 − 0.4q)]
    q = brentq(lambda q: 0.5 * (0.9 / (0.1 + 0.8 * q) + 0.3 / (0.7 - 0.4 * q)) - 1.0, 1e-9, 1 - 1e-9)
    est = em_prior(np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([0.5, 0.5]), tol=1e-14)
    assert est.prior[0] == pytest.approx(q, abs=1e-9)
    # adjusted posteriors: w(y) ∝ (π_y / ½)·p(y|x)
    w = np.array([0.9 * q, 0.1 * (1 - q)])
    np.testing.assert_allclose(est.posteriors[0], w / w.sum(), atol=1e-9)


def test_em_prior_is_optimal_when_classes_vanish(monkeypatch: pytest.MonkeyPatch) -> None:
    # nearly uninformative posteriors: the maximum-likelihood prior puts most classes at 0, where plain EM
    # crawls (1,810 steps to tol 1e-12 here, so the default budget of a bootstrap would run out)
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(10, 3.0) * np.linspace(0.5, 1.5, 10), size=2_000)
    train = np.full(10, 0.1)
    est = em_prior(probs, train, tol=1e-12, max_iter=1_000)
    assert est.converged
    # KKT of the concave likelihood on the simplex: ∂L/∂π_k = (1/m) Σ_i (p_ik/π^tr_k) / Σ_j (π_j/π^tr_j) p_ij
    # is 1 on the support and ≤ 1 off it
    grad = (1.0 / ((est.prior / train) @ probs.T) / len(probs)) @ (probs / train)
    support = est.prior > 1e-6
    assert 0 < support.sum() < 10
    np.testing.assert_allclose(grad[support], 1.0, atol=1e-8)
    assert np.all(grad[~support] <= 1.0 + 1e-8)
    monkeypatch.setattr(EMQ, "MAX_ITER", 100_000)
    quapy_prior, _ = EMQ.EM(train, probs, epsilon=1e-15)
    np.testing.assert_allclose(est.prior, quapy_prior, atol=1e-8)


def test_bootstrap_covers_the_true_prior_and_is_centred(demo_posteriors: tuple[np.ndarray, np.ndarray]) -> None:
    probs, labels = demo_posteriors
    weights = SHIFTS["three classes ×5"]
    target = shifted_sample(probs, labels, weights, 1_000, seed=11)
    boots = bootstrap_priors(target, probs.mean(axis=0), n_boot=200, seed=0)
    assert boots.shape == (200, 10)
    np.testing.assert_allclose(boots.sum(axis=1), 1.0, atol=1e-9)
    est = em_prior(target, probs.mean(axis=0))
    lo, hi = np.quantile(boots, [0.005, 0.995], axis=0)
    assert np.all((lo <= est.prior) & (est.prior <= hi))
    # a single bootstrap draw equals EM on the explicitly resampled rows (weights are counts / m)
    rng = np.random.default_rng(0)
    counts = rng.multinomial(1_000, np.full(1_000, 1e-3))
    explicit = em_prior(np.repeat(target, counts, axis=0), probs.mean(axis=0), tol=1e-8, max_iter=2_000)
    np.testing.assert_allclose(boots[0], explicit.prior, atol=1e-6)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError):
        em_prior(np.zeros((0, 3)), np.ones(3))
    with pytest.raises(ValueError):
        em_prior(np.ones((4, 3)) / 3, np.ones(2))
    with pytest.raises(ValueError):
        em_prior(np.full((4, 3), np.nan), np.ones(3))
