import math

import numpy as np
import pytest
import torch
from scipy.special import log_softmax

from service.training.losses import (
    cross_entropy,
    flsd_gamma,
    flsd_loss,
    focal_gradient_factor,
    focal_loss,
    gamma_for_probability,
)


def focal_reference(logits: np.ndarray, labels: np.ndarray, gamma: np.ndarray | float) -> np.ndarray:
    """Float64 numpy reference: −(1 − p_y)^γ log p_y per row."""
    log_p = log_softmax(logits.astype(np.float64), axis=1)[np.arange(len(labels)), labels]
    return -((-np.expm1(log_p)) ** gamma) * log_p


def test_cross_entropy_hand_computed():
    logits = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    labels = torch.tensor([0, 1])
    # −log(1/2) and −log(e²/(e + e²)) = log(1 + e⁻¹)
    expected = [math.log(2), math.log(1 + math.exp(-1))]
    torch.testing.assert_close(cross_entropy(logits, labels, reduction="none"), torch.tensor(expected))
    torch.testing.assert_close(cross_entropy(logits, labels, reduction="sum"), torch.tensor(sum(expected)))


def test_focal_hand_computed():
    logits = torch.tensor([[0.0, 0.0], [1.0, 2.0]])
    labels = torch.tensor([0, 0])
    # p = 1/2: FL_2 = (1/2)² ln 2.  p = 1/(1 + e): FL_2 = (e/(1+e))² ln(1 + e)
    e = math.e
    expected = torch.tensor([0.25 * math.log(2), (e / (1 + e)) ** 2 * math.log(1 + e)])
    torch.testing.assert_close(focal_loss(logits, labels, 2.0, reduction="none"), expected)
    assert focal_loss(logits, labels, 2.0).item() == pytest.approx(expected.mean().item(), rel=1e-6)


def test_focal_gamma_zero_is_cross_entropy():
    logits = torch.randn(20, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(20) % 5
    torch.testing.assert_close(focal_loss(logits, labels, 0.0), cross_entropy(logits, labels))


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.0, 5.0])
@pytest.mark.parametrize("scale", [1.0, 10.0, 40.0])
def test_focal_matches_float64_reference(gamma, scale):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(64, 7)) * scale
    labels = rng.integers(0, 7, size=64)
    got = focal_loss(torch.tensor(logits, dtype=torch.float32), torch.tensor(labels), gamma, reduction="none")
    np.testing.assert_allclose(got.numpy(), focal_reference(logits, labels, gamma), rtol=2e-5, atol=1e-6)


def test_focal_is_finite_for_saturated_logits():
    logits = torch.tensor([[60.0, -60.0], [-60.0, 60.0]], requires_grad=True)
    loss = focal_loss(logits, torch.tensor([0, 0]), 2.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    ("p", "gamma53", "gamma52"),
    [(0.0, 5.0, 5.0), (0.1999, 5.0, 5.0), (0.2, 3.0, 3.0), (0.4999, 3.0, 3.0), (0.5, 3.0, 2.0), (1.0, 3.0, 2.0)],
)
def test_flsd_gamma_boundaries(p, gamma53, gamma52):
    p_t = torch.tensor([p], dtype=torch.float64)
    assert flsd_gamma(p_t, gamma_high=3.0).item() == gamma53
    assert flsd_gamma(p_t, gamma_high=2.0).item() == gamma52


def test_flsd_gamma_carries_no_gradient():
    p = torch.tensor([0.1, 0.3, 0.7], requires_grad=True)
    assert not flsd_gamma(p).requires_grad


@pytest.mark.parametrize("gamma_high", [3.0, 2.0])
def test_flsd_gradient_equals_focal_gradient_with_constant_gamma(gamma_high):
    gen = torch.Generator().manual_seed(3)
    logits = (torch.randn(200, 4, generator=gen) * 2).requires_grad_()
    labels = torch.randint(0, 4, (200,), generator=gen)
    flsd_loss(logits, labels, gamma_high=gamma_high).backward()
    flsd_grad = logits.grad.clone()

    p_true = torch.softmax(logits.detach(), dim=1)[torch.arange(200), labels]
    gamma = flsd_gamma(p_true, gamma_high=gamma_high)
    assert {5.0, 3.0} <= set(gamma.tolist())  # the batch crosses the 0.2 threshold
    logits.grad = None
    focal_loss(logits, labels, gamma.clone()).backward()
    torch.testing.assert_close(flsd_grad, logits.grad)


def test_flsd_values_match_reference():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(100, 3)) * 3
    labels = rng.integers(0, 3, size=100)
    p = np.exp(log_softmax(logits, axis=1)[np.arange(100), labels])
    gamma52 = np.where(p < 0.2, 5.0, np.where(p < 0.5, 3.0, 2.0))
    got = flsd_loss(torch.tensor(logits), torch.tensor(labels), gamma_high=2.0, reduction="none")
    np.testing.assert_allclose(got.numpy(), focal_reference(logits, labels, gamma52), rtol=1e-10)


@pytest.mark.parametrize("p0", [0.05, 0.1, 0.2, 0.25, 0.3, 0.4, 0.45])
def test_lambert_w_gamma_solves_g_equals_one(p0):
    assert focal_gradient_factor(p0, gamma_for_probability(p0)) == pytest.approx(1.0, abs=1e-9)


def test_lambert_w_gamma_known_values():
    # papers.md §1.2: "5" ≈ γ(0.2) and "3" ≈ γ(0.25)
    assert gamma_for_probability(0.2) == pytest.approx(4.85, abs=0.01)
    assert gamma_for_probability(0.25) == pytest.approx(3.07, abs=0.01)
    assert gamma_for_probability(0.5) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("p0", [0.0, 0.6, 1.0])
def test_lambert_w_gamma_rejects_out_of_domain(p0):
    with pytest.raises(ValueError, match="p0"):
        gamma_for_probability(p0)


def test_gradient_factor_matches_autograd_ratio():
    """∂FL/∂z_y = g(p, γ)·∂CE/∂z_y for the true-class logit."""
    logits = torch.tensor([[0.3, -0.2, 1.1]], dtype=torch.float64, requires_grad=True)
    label = torch.tensor([0])
    (grad_fl,) = torch.autograd.grad(focal_loss(logits, label, 2.0), logits)
    (grad_ce,) = torch.autograd.grad(cross_entropy(logits, label), logits)
    p = torch.softmax(logits, 1)[0, 0].item()
    assert (grad_fl[0, 0] / grad_ce[0, 0]).item() == pytest.approx(focal_gradient_factor(p, 2.0), rel=1e-9)
