"""Focal-loss family: cross-entropy, focal loss with fixed γ, FLSD-53/52, and the Lambert-W γ rule.

All losses take raw logits ``(N, K)`` and integer labels ``(N,)`` and work from ``log_softmax`` so that
confident samples neither overflow nor produce ``0 * log 0``.

Reduction: Mukhoti et al. 2020 sum over the batch (``size_average=False``); we default to the **mean**
because the trainer uses Adam with a fixed learning rate whatever the batch size, and the curvature
diagnostics (Kimura & Naganuma 2024) are defined on the mean loss.  ``reduction="sum"`` reproduces the
reference code exactly.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import lambertw
from torch import Tensor

Reduction = Literal["mean", "sum", "none"]

# FLSD thresholds and γ values from torrvision/focal_calibration Losses/focal_loss_adaptive_gamma.py.
FLSD_LOW_THRESHOLD = 0.2
FLSD_MID_THRESHOLD = 0.5
FLSD_GAMMA_LOW = 5.0
FLSD_GAMMA_MID = 3.0


def _reduce(values: Tensor, reduction: Reduction) -> Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"unknown reduction {reduction!r}; expected 'mean', 'sum' or 'none'")


def true_class_log_prob(logits: Tensor, labels: Tensor) -> Tensor:
    """log p_y per row, shape ``(N,)``, from ``log_softmax`` (stable for large logits)."""
    return F.log_softmax(logits, dim=-1).gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)


def cross_entropy(logits: Tensor, labels: Tensor, *, reduction: Reduction = "mean") -> Tensor:
    """CE = −log p_y."""
    return _reduce(-true_class_log_prob(logits, labels), reduction)


def focal_loss(logits: Tensor, labels: Tensor, gamma: float | Tensor, *, reduction: Reduction = "mean") -> Tensor:
    """FL_γ = −(1 − p_y)^γ · log p_y  (Mukhoti et al. 2020 eq. 1; no α weight; γ = 0 gives CE).

    ``gamma`` is a float or a per-sample tensor ``(N,)``.  ``1 − p_y`` is computed as ``−expm1(log p_y)``
    so that it stays accurate (and non-zero) for confident samples.
    """
    log_p = true_class_log_prob(logits, labels)
    one_minus_p = (-torch.expm1(log_p)).clamp_min(torch.finfo(log_p.dtype).tiny)
    gamma_t = torch.as_tensor(gamma, dtype=log_p.dtype, device=log_p.device)
    return _reduce(-torch.pow(one_minus_p, gamma_t) * log_p, reduction)


def flsd_gamma(p_true: Tensor, *, gamma_high: float = 3.0) -> Tensor:
    """Sample-dependent γ of FLSD-5x: 5 on [0, 0.2), 3 on [0.2, 0.5), ``gamma_high`` on [0.5, 1].

    FLSD-53 is ``gamma_high=3`` (so 5 below 0.2, 3 elsewhere); FLSD-52 is ``gamma_high=2`` and is a
    *three*-piece rule, exactly as in the reference code.  The result carries no gradient.
    """
    p = p_true.detach()
    high = torch.full_like(p, gamma_high)
    mid = torch.where(p < FLSD_MID_THRESHOLD, torch.full_like(p, FLSD_GAMMA_MID), high)
    return torch.where(p < FLSD_LOW_THRESHOLD, torch.full_like(p, FLSD_GAMMA_LOW), mid).detach()


def flsd_loss(logits: Tensor, labels: Tensor, *, gamma_high: float = 3.0, reduction: Reduction = "mean") -> Tensor:
    """Focal loss with the FLSD sample-dependent γ (no gradient flows through γ)."""
    p_true = true_class_log_prob(logits, labels).exp()
    return focal_loss(logits, labels, flsd_gamma(p_true, gamma_high=gamma_high), reduction=reduction)


def focal_gradient_factor(p: float | np.ndarray, gamma: float) -> float | np.ndarray:
    """g(p, γ) = (1−p)^γ − γ·p·(1−p)^(γ−1)·log p, with ∂FL/∂w = g(p, γ)·∂CE/∂w (Mukhoti et al. §4)."""
    p_arr = np.asarray(p, dtype=np.float64)
    g = (1 - p_arr) ** gamma - gamma * p_arr * (1 - p_arr) ** (gamma - 1) * np.log(p_arr)
    return float(g) if np.ndim(g) == 0 else g


def gamma_for_probability(p0: float) -> float:
    """The γ at which focal loss starts to shrink gradients at p_y = p0, i.e. g(p0, γ) = 1.

    Lambert-W solution from the reference code (``get_gamma``, branch k = −1); p0 = 0.2 gives
    γ ≈ 4.85 and p0 = 0.25 gives γ ≈ 3.07.  Defined for p0 ∈ (0, 0.5]; γ(0.5) = 0.
    """
    if not 0.0 < p0 <= 0.5:
        raise ValueError(f"p0 must lie in (0, 0.5], got {p0}")
    log_p = float(np.log(p0))
    log_q = float(np.log1p(-p0))
    a = (1 - p0) / (p0 * log_p)
    y = ((1 - p0) ** (1 - a) / (p0 * log_p)) * log_q
    gamma = a + float(np.real(lambertw(-y + 1e-12, k=-1))) / log_q
    return max(gamma, 0.0)
