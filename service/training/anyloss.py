"""AnyLoss (Han, Moniz & Chawla 2024): binary classification metrics turned into losses.

The network's positive-class probability p = σ(z₁ − z₀) (binary models output 2-class logits ``[0, z]``)
is *amplified* to ŷ = A(p) = σ(L·(p − 0.5)), L = 73 by default, and a soft confusion matrix is built
over the **mini-batch** (N = batch size; the original notebooks' use of the training-set size is a bug,
see papers.md §3.2).  Each loss is 1 − metric; ``eps`` keeps every denominator positive so that a batch
without positives (or negatives) still gives finite gradients.

MCC is not in the paper or the authors' code: it is our AnyLoss-style extension, loss = (1 − MCC)/2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

DEFAULT_AMPLIFIER = 73.0
DEFAULT_EPS = 1e-5


class SoftConfusion(NamedTuple):
    tp: Tensor
    fn: Tensor
    fp: Tensor
    tn: Tensor

    @property
    def n(self) -> Tensor:
        return self.tp + self.fn + self.fp + self.tn


def positive_probability(logits: Tensor) -> Tensor:
    """p = P(class 1), shape ``(N,)``, from 2-class logits ``(N, 2)`` or 1-column logits ``(N,)/(N, 1)``."""
    if logits.ndim == 2 and logits.shape[1] == 2:
        return torch.sigmoid(logits[:, 1] - logits[:, 0])
    if logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 1):
        return torch.sigmoid(logits.reshape(-1))
    raise ValueError(f"AnyLoss is binary: expected logits of shape (N, 2) or (N,), got {tuple(logits.shape)}")


def amplify(p: Tensor, amplifier: float = DEFAULT_AMPLIFIER) -> Tensor:
    """A(p) = σ(L·(p − 0.5)): a steep sigmoid around the 0.5 threshold (AnyLoss eq. for ŷ)."""
    return torch.sigmoid(amplifier * (p - 0.5))


def soft_confusion(y_hat: Tensor, labels: Tensor) -> SoftConfusion:
    """TP = Σ yŷ, FN = Σ y(1−ŷ), FP = Σ (1−y)ŷ, TN = Σ (1−y)(1−ŷ) over the batch."""
    y = labels.to(y_hat.dtype)
    return SoftConfusion(
        tp=(y * y_hat).sum(),
        fn=(y * (1 - y_hat)).sum(),
        fp=((1 - y) * y_hat).sum(),
        tn=((1 - y) * (1 - y_hat)).sum(),
    )


def accuracy_loss(cm: SoftConfusion, eps: float = DEFAULT_EPS) -> Tensor:
    return 1 - (cm.tp + cm.tn) / (cm.n + eps)


def fbeta_loss(cm: SoftConfusion, eps: float = DEFAULT_EPS, beta: float = 1.0) -> Tensor:
    b2 = beta * beta
    return 1 - (1 + b2) * cm.tp / ((1 + b2) * cm.tp + b2 * cm.fn + cm.fp + eps)


def gmean_loss(cm: SoftConfusion, eps: float = DEFAULT_EPS) -> Tensor:
    """1 − sqrt(TPR·TNR); eps also inside the root so its gradient stays finite at 0."""
    tpr = cm.tp / (cm.tp + cm.fn + eps)
    tnr = cm.tn / (cm.tn + cm.fp + eps)
    return 1 - torch.sqrt(tpr * tnr + eps)


def balanced_accuracy_loss(cm: SoftConfusion, eps: float = DEFAULT_EPS) -> Tensor:
    tpr = cm.tp / (cm.tp + cm.fn + eps)
    tnr = cm.tn / (cm.tn + cm.fp + eps)
    return 1 - (tpr + tnr) / 2


def mcc_loss(cm: SoftConfusion, eps: float = DEFAULT_EPS) -> Tensor:
    """(1 − MCC)/2 ∈ [0, 1]: our extension, not part of the AnyLoss paper."""
    num = cm.tp * cm.tn - cm.fp * cm.fn
    den = torch.sqrt((cm.tp + cm.fp) * (cm.tp + cm.fn) * (cm.tn + cm.fp) * (cm.tn + cm.fn) + eps)
    return (1 - num / den) / 2


METRIC_LOSSES: dict[str, Callable[..., Tensor]] = {
    "accuracy": accuracy_loss,
    "fbeta": fbeta_loss,
    "gmean": gmean_loss,
    "balanced_accuracy": balanced_accuracy_loss,
    "mcc": mcc_loss,
}


def anyloss(
    logits: Tensor,
    labels: Tensor,
    metric: str,
    *,
    beta: float = 1.0,
    amplifier: float = DEFAULT_AMPLIFIER,
    eps: float = DEFAULT_EPS,
) -> Tensor:
    """1 − metric(soft confusion of A(p) against ``labels`` ∈ {0, 1}), a scalar for the whole batch."""
    try:
        metric_loss = METRIC_LOSSES[metric]
    except KeyError:
        raise ValueError(f"unknown AnyLoss metric {metric!r}; choose from {sorted(METRIC_LOSSES)}") from None
    cm = soft_confusion(amplify(positive_probability(logits), amplifier), labels)
    if metric == "fbeta":
        return metric_loss(cm, eps, beta=beta)
    return metric_loss(cm, eps)
