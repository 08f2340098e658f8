"""Training objectives by name: what ``--loss`` accepts and what the model card records.

| name | loss | card ``loss.gamma`` |
|---|---|---|
| ``cross_entropy`` | −log p_y | 0 |
| ``focal`` | −(1−p_y)^γ log p_y, γ required | γ |
| ``flsd53`` | focal, γ = 5 if p_y < 0.2 else 3 | 3 (the γ of every sample with p_y ≥ 0.2) |
| ``flsd52`` | focal, γ = 5 / 3 / 2 on [0, .2) / [.2, .5) / [.5, 1] | 2 (the γ of samples with p_y ≥ 0.5) |
| ``anyloss_<metric>`` | AnyLoss (binary only) | None |

AnyLoss metrics: accuracy, f1, fbeta (β), gmean, balanced_accuracy, mcc (our extension).

All objectives are mean-reduced over the batch (AnyLoss is a batch-level quantity by definition).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from torch import Tensor

from service.training import anyloss, losses
from service.training.options import LOSS_NAMES

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Objective:
    """A named, mean-reduced training loss ``fn(logits (N, K), labels (N,)) -> scalar``."""

    name: str
    fn: LossFn
    gamma: float | None = None
    params: dict[str, float | int | str] = field(default_factory=dict)
    binary_only: bool = False

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        return self.fn(logits, labels)


def make_objective(
    name: str, *, gamma: float | None = None, beta: float = 1.0, amplifier: float = anyloss.DEFAULT_AMPLIFIER
) -> Objective:
    """Build the objective called ``name`` (see the module table); raises ``ValueError`` on bad input."""
    if name == "cross_entropy":
        return Objective(name, losses.cross_entropy, gamma=0.0, params={"reduction": "mean"})
    if name == "focal":
        if gamma is None or gamma < 0:
            raise ValueError("loss 'focal' needs a non-negative gamma (e.g. --gamma 3)")
        return Objective(name, partial(losses.focal_loss, gamma=gamma), gamma=gamma, params={"reduction": "mean"})
    if name in ("flsd53", "flsd52"):
        high = 3.0 if name == "flsd53" else 2.0
        schedule = "5 if p_y<0.2 else 3" if name == "flsd53" else "5 if p_y<0.2, 3 if p_y<0.5, else 2"
        return Objective(
            name,
            partial(losses.flsd_loss, gamma_high=high),
            gamma=high,
            params={"reduction": "mean", "gamma_schedule": schedule},
        )
    if name.startswith("anyloss_"):
        metric = name.removeprefix("anyloss_")
        if metric == "f1":
            metric, beta = "fbeta", 1.0
        if metric not in anyloss.METRIC_LOSSES:
            raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSS_NAMES)}")
        params: dict[str, float | int | str] = {"amplifier_L": amplifier, "metric": metric}
        if metric == "fbeta":
            params["beta"] = beta
        if metric == "mcc":
            params["note"] = "MCC is a calibserve extension, not in the AnyLoss paper"
        fn = partial(anyloss.anyloss, metric=metric, beta=beta, amplifier=amplifier)
        return Objective(name, fn, gamma=None, params=params, binary_only=True)
    raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSS_NAMES)}")
