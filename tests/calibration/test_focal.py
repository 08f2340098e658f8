"""The focal calibration map ψ_γ and focal temperature scaling (Komisarenko & Kull 2024)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import log_softmax

from service.calibration import make_calibrator
from service.calibration.focal import FocalObjective, FocalTemperatureScaling
from service.calibration.focal_map import FocalParts, focal_map, log_focal_map_logits
from service.calibration.temperature import TemperatureScaling
from tests.calibration.factories import overconfident_logits, sample_labels, softmax

GAMMAS = [-1.0, -0.75, -0.5, -0.25, 0.25, 0.5, 1.0, 3.0, 5.0]


def naive_focal_map(q: np.ndarray, gamma: float) -> np.ndarray:
    """papers.md §2.2 verbatim: h = q / ((1 − q)^γ (1 − γ q log q/(1 − q))), normalised."""
    h = q / ((1 - q) ** gamma * (1 - gamma * q * np.log(q) / (1 - q)))
    return h / h.sum(axis=1, keepdims=True)


def binary_focal_map(p: np.ndarray, gamma: float) -> np.ndarray:
    """papers.md §2.2, the binary closed form ψ_γ(p) for P(class 1) = p."""
    num = p**gamma * (p - gamma * (1 - p) * np.log(1 - p))
    return num / (num + (1 - p) ** gamma * (1 - p - gamma * p * np.log(p)))


def random_simplex(n: int, k: int, seed: int, scale: float = 2.0) -> np.ndarray:
    return softmax(np.random.default_rng(seed).normal(size=(n, k)) * scale)


def test_gamma_zero_is_the_identity() -> None:
    q = random_simplex(500, 6, seed=0)
    np.testing.assert_allclose(focal_map(q, 0.0), q, atol=1e-15)
    z = np.random.default_rng(1).normal(size=(50, 4))
    np.testing.assert_array_equal(log_focal_map_logits(z, 0.0), log_softmax(z, axis=1))


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("k", [2, 5, 50])
def test_matches_the_formula_on_moderate_probabilities(gamma: float, k: int) -> None:
    q = random_simplex(400, k, seed=k)
    np.testing.assert_allclose(focal_map(q, gamma), naive_focal_map(q, gamma), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("gamma", GAMMAS)
def test_binary_closed_form_equals_two_class_map(gamma: float) -> None:
    p = np.linspace(0.001, 0.999, 999)
    q = np.stack([1 - p, p], axis=1)
    np.testing.assert_allclose(focal_map(q, gamma)[:, 1], binary_focal_map(p, gamma), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.25, 1.0, 3.0, 5.0, 10.0])
def test_monotone_and_rank_preserving_for_nonnegative_gamma(gamma: float) -> None:
    # Binary: the mapped log-odds must increase with the input log-odds x (probabilities saturate at 1).
    x = np.linspace(-14, 14, 20001)
    log_p = log_focal_map_logits(np.stack([np.zeros_like(x), x], axis=1), gamma)
    assert np.all(np.diff(log_p[:, 1] - log_p[:, 0]) > 0)
    p = np.linspace(0.5, 1 - 1e-6, 2001)[1:]
    binary = focal_map(np.stack([1 - p, p], axis=1), gamma)[:, 1]
    q = random_simplex(2000, 8, seed=2, scale=3.0)
    mapped = focal_map(q, gamma)
    np.testing.assert_array_equal(np.argsort(mapped, axis=1), np.argsort(q, axis=1))
    assert np.all(binary >= p)  # γ > 0 raises a binary confidence


@pytest.mark.parametrize("gamma", GAMMAS + [0.0, 10.0])
@pytest.mark.parametrize("k", [2, 10, 1000])
def test_finite_for_huge_logits_and_many_classes(gamma: float, k: int) -> None:
    rng = np.random.default_rng(k)
    z = rng.choice([-1e4, 1e4], size=(20, k)) + rng.normal(size=(20, k))
    log_p = log_focal_map_logits(z, gamma)
    assert np.isfinite(log_p).all()
    np.testing.assert_allclose(np.exp(log_p).sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(log_p.argmax(axis=1), z.argmax(axis=1))


def test_near_certain_rows_match_high_precision_arithmetic() -> None:
    # u = 1 − q below float64 resolution: compare log ψ with mpmath-free closed forms at K = 2.
    x = np.array([30.0, 50.0, 200.0])  # logit gaps; u = σ(−x) down to 1e-87
    z = np.stack([np.zeros_like(x), x], axis=1)
    for gamma in (0.5, 2.0):
        log_p = log_focal_map_logits(z, gamma)
        # For tiny u: h(1 − u) ≈ u^−γ/(1 + γ), h(u) ≈ u, so log ψ_0 ≈ log u + γ log u + log(1 + γ).
        log_u = -x
        np.testing.assert_allclose(log_p[:, 0], (1 + gamma) * log_u + np.log1p(gamma), rtol=1e-9)


def focal_optimal_prediction(eta: np.ndarray, gamma: float) -> np.ndarray:
    """argmin_q Σ_k η_k·(−(1 − q_k)^γ log q_k) over the simplex, numerically (softmax parametrisation)."""

    def risk(v: np.ndarray) -> float:
        q = softmax(v[None, :])[0]
        return float(np.sum(eta * -((1 - q) ** gamma) * np.log(q)))

    res = minimize(risk, np.log(eta), method="Nelder-Mead", options={"xatol": 1e-12, "fatol": 1e-15, "maxiter": 20000})
    return softmax(res.x[None, :])


@pytest.mark.parametrize("gamma", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("eta", [[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [0.9, 0.05, 0.05]])
def test_maps_focal_optimal_predictions_back_to_the_truth(gamma: float, eta: list[float]) -> None:
    truth = np.array(eta)
    q_star = focal_optimal_prediction(truth, gamma)
    assert q_star[0].max() < truth.max()  # focal-trained models are under-confident ...
    np.testing.assert_allclose(focal_map(q_star, gamma)[0], truth, atol=1e-6)  # ... and ψ_γ undoes it


@pytest.mark.parametrize(("log_t", "gamma"), [(0.3, 0.0), (0.1, 0.7), (-0.2, -0.5), (0.8, 3.0), (0.4, -0.85)])
def test_objective_gradient_matches_finite_differences(log_t: float, gamma: float) -> None:
    z, y = overconfident_logits(500, 6, seed=5)
    objective = FocalObjective(z, y)
    _, grad = objective(log_t, gamma)
    h = 1e-6
    numeric = [
        (objective(log_t + h, gamma)[0] - objective(log_t - h, gamma)[0]) / (2 * h),
        (objective(log_t, gamma + h)[0] - objective(log_t, gamma - h)[0]) / (2 * h),
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_gamma_zero_equals_temperature_scaling_exactly() -> None:
    z, y = overconfident_logits(2000, 10, seed=6)
    fts = FocalTemperatureScaling(gamma=0.0).fit(z, y)
    ts = TemperatureScaling().fit(z, y)
    assert fts.gamma_ == 0.0 and fts.temperature_ == ts.temperature_
    np.testing.assert_array_equal(fts.predict_proba(z), ts.predict_proba(z))
    # The general log-space path (bypassed at γ = 0) also reduces to log-softmax there:
    log_h = FocalParts.from_logits(np.ascontiguousarray(z.T / 1.3)).log_h(0.0)
    np.testing.assert_allclose(log_h.T, log_softmax(z / 1.3, axis=1), atol=1e-13)


def fts_nll(z: np.ndarray, y: np.ndarray, t: float, gamma: float) -> float:
    return float(-np.log(naive_focal_map(softmax(z / t), gamma)[np.arange(len(y)), y]).mean())


def test_joint_fit_matches_dense_grid_search() -> None:
    rng = np.random.default_rng(7)
    z = rng.normal(size=(800, 4)) * 1.5
    y = sample_labels(naive_focal_map(softmax(z / 1.2), 1.5), rng)
    cal = make_calibrator("focal_temperature").fit(z, y)
    ours = fts_nll(z, y, cal.temperature_, cal.gamma_)
    temps = np.exp(np.linspace(np.log(0.3), np.log(5.0), 121))
    gammas = np.linspace(-0.9, 6.0, 70)
    grid = min(fts_nll(z, y, t, g) for t in temps for g in gammas)
    assert ours <= grid + 1e-9
    assert ours == pytest.approx(grid, abs=1e-4)
    assert ours <= fts_nll(z, y, TemperatureScaling().fit(z, y).temperature_, 0.0) + 1e-12


def test_recovers_a_focal_generating_process() -> None:
    rng = np.random.default_rng(8)
    z = rng.normal(size=(30_000, 5)) * 2.0
    y = sample_labels(naive_focal_map(softmax(z / 1.3), 2.0), rng)
    cal = make_calibrator("focal_temperature").fit(z, y)
    assert cal.gamma_ == pytest.approx(2.0, abs=0.3)
    assert cal.temperature_ == pytest.approx(1.3, rel=0.1)


def test_fixed_gamma_fits_temperature_only() -> None:
    z, y = overconfident_logits(1000, 5, seed=9)
    cal = FocalTemperatureScaling(gamma=3.0).fit(z, y)
    assert cal.gamma_ == 3.0
    temps = np.exp(np.linspace(np.log(0.5), np.log(20.0), 2001))
    grid = min(fts_nll(z, y, t, 3.0) for t in temps)
    assert fts_nll(z, y, cal.temperature_, 3.0) == pytest.approx(grid, abs=1e-5)
