import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, fbeta_score, matthews_corrcoef, recall_score

from service.training.anyloss import (
    accuracy_loss,
    amplify,
    anyloss,
    fbeta_loss,
    positive_probability,
    soft_confusion,
)

METRICS = ["accuracy", "fbeta", "gmean", "balanced_accuracy", "mcc"]


def binary_logits(z: torch.Tensor) -> torch.Tensor:
    """The [0, z] 2-class logits a binary AnyLoss model emits."""
    return torch.stack([torch.zeros_like(z), z], dim=1)


def test_amplifier_is_centred_and_steep():
    p = torch.tensor([0.5, 0.6, 0.4], dtype=torch.float64)
    a = amplify(p)
    assert a[0].item() == 0.5
    assert a[1].item() == pytest.approx(1 / (1 + math.exp(-7.3)))
    assert a[2].item() == pytest.approx(1 - a[1].item())


def test_positive_probability_of_zero_z_logits():
    z = torch.tensor([0.0, 2.0])
    torch.testing.assert_close(positive_probability(binary_logits(z)), torch.sigmoid(z))
    torch.testing.assert_close(positive_probability(z), torch.sigmoid(z))


@pytest.mark.parametrize(
    ("metric", "expected"),
    # y = [1, 0, 1, 1], every p = 0.5 so ŷ = 0.5: TP = 1.5, FN = 1.5, FP = 0.5, TN = 0.5, N = 4
    [("accuracy", 0.5), ("fbeta", 1 - 3 / 5), ("gmean", 0.5), ("balanced_accuracy", 0.5), ("mcc", 0.5)],
)
def test_hand_computed_at_half(metric, expected):
    logits = binary_logits(torch.zeros(4, dtype=torch.float64))
    labels = torch.tensor([1, 0, 1, 1])
    assert anyloss(logits, labels, metric, eps=0.0).item() == pytest.approx(expected, abs=1e-12)


def test_fbeta_hand_computed_beta_two():
    # F_β = (1+β²)TP / ((1+β²)TP + β²FN + FP) with TP = 1.5, FN = 1.5, FP = 0.5, β = 2: 7.5 / 14
    logits = binary_logits(torch.zeros(4, dtype=torch.float64))
    got = anyloss(logits, torch.tensor([1, 0, 1, 1]), "fbeta", beta=2.0, eps=0.0)
    assert got.item() == pytest.approx(1 - 7.5 / 14)


def _saturated_case() -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    y_pred = np.where(rng.random(300) < 0.8, y, 1 - y)  # 80% correct hard predictions
    z = torch.tensor(np.where(y_pred == 1, 10.0, -10.0), dtype=torch.float64)  # p ≈ 1 or 0, A(p) ≈ ŷ
    return binary_logits(z), y, y_pred


@pytest.mark.parametrize(
    ("metric", "reference"),
    [
        ("accuracy", lambda y, p: 1 - accuracy_score(y, p)),
        ("fbeta", lambda y, p: 1 - fbeta_score(y, p, beta=1.0)),
        ("gmean", lambda y, p: 1 - math.sqrt(recall_score(y, p) * recall_score(y, p, pos_label=0))),
        ("balanced_accuracy", lambda y, p: 1 - balanced_accuracy_score(y, p)),
        ("mcc", lambda y, p: (1 - matthews_corrcoef(y, p)) / 2),
    ],
)
def test_saturated_predictions_match_scikit_learn(metric, reference):
    logits, y, y_pred = _saturated_case()
    got = anyloss(logits, torch.tensor(y), metric).item()
    assert got == pytest.approx(reference(y, y_pred), abs=1e-4)


def test_fbeta_two_matches_scikit_learn():
    logits, y, y_pred = _saturated_case()
    got = anyloss(logits, torch.tensor(y), "fbeta", beta=2.0).item()
    assert got == pytest.approx(1 - fbeta_score(y, y_pred, beta=2.0), abs=1e-4)


@pytest.mark.parametrize("metric", METRICS)
def test_gradients_finite_and_nonzero_near_half(metric):
    gen = torch.Generator().manual_seed(0)
    z = (torch.randn(64, generator=gen, dtype=torch.float64) * 0.05).requires_grad_()
    labels = torch.randint(0, 2, (64,), generator=gen)
    anyloss(binary_logits(z), labels, metric).backward()
    assert torch.isfinite(z.grad).all()
    assert (z.grad.abs() > 1e-6).all()


@pytest.mark.parametrize("metric", METRICS)
def test_batch_without_positives_stays_finite(metric):
    z = (torch.randn(16, dtype=torch.float64) * 0.05).requires_grad_()
    loss = anyloss(binary_logits(z), torch.zeros(16, dtype=torch.int64), metric)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_accuracy_derivative_matches_closed_form():
    # ∂ℓ_acc/∂ŷ_i = (1 − 2y_i)/N with N the batch size (papers.md §3.3)
    y_hat = torch.tensor([0.3, 0.6, 0.9, 0.2, 0.5], dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([1, 0, 1, 0, 1])
    accuracy_loss(soft_confusion(y_hat, labels), eps=0.0).backward()
    torch.testing.assert_close(y_hat.grad, (1 - 2 * labels.double()) / 5)


def test_fbeta_derivative_matches_closed_form():
    # ∂ℓ_Fβ/∂ŷ_i = −(1+β²)·[y_i(β²Σy+Σŷ) − Σyŷ]/(β²Σy+Σŷ)²
    y_hat = torch.tensor([0.3, 0.6, 0.9, 0.2, 0.5], dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([1, 0, 1, 0, 1])
    beta2 = 0.25
    fbeta_loss(soft_confusion(y_hat, labels), eps=0.0, beta=0.5).backward()
    y = labels.double()
    yh = y_hat.detach()
    den = beta2 * y.sum() + yh.sum()
    expected = -(1 + beta2) * (y * den - (y * yh).sum()) / den**2
    torch.testing.assert_close(y_hat.grad, expected)


def test_n_is_the_batch_size():
    """Duplicating a batch leaves the (rate) metric losses unchanged: N scales with the batch."""
    z = torch.tensor([0.02, -0.01, 0.03, -0.04], dtype=torch.float64)
    labels = torch.tensor([1, 0, 0, 1])
    for metric in METRICS:
        once = anyloss(binary_logits(z), labels, metric, eps=0.0)
        twice = anyloss(binary_logits(z.repeat(2)), labels.repeat(2), metric, eps=0.0)
        assert twice.item() == pytest.approx(once.item(), rel=1e-9), metric


def test_rejects_multiclass_logits_and_unknown_metric():
    with pytest.raises(ValueError, match="binary"):
        anyloss(torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64), "accuracy")
    with pytest.raises(ValueError, match="unknown AnyLoss metric"):
        anyloss(torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64), "auc")
