"""A small, deterministic trainer with stratified mini-batches and early stopping on validation.

Optimisers: Adam at a fixed learning rate (the default), or SGD with momentum 0.9 (not Nesterov) and a
step schedule that multiplies the learning rate by 0.1 after 50% and 75% of the epochs, the shape of
Mukhoti et al. 2020's CIFAR schedule (lr 0.1, ×0.1 at epochs 150 and 250 of 350).  With
``patience=None`` every epoch runs and the last weights are kept: the papers' fixed-epochs regime.

Determinism: training runs inside ``seeding.deterministic(seed)``, so the same seed gives
bit-identical weights and the caller's torch state is left untouched.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from service.training.data import Split, check_training_data
from service.training.objectives import Objective
from service.training.seeding import deterministic


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    # Epochs without a validation improvement before stopping and restoring the best epoch's weights;
    # None trains all epochs and keeps the last weights (the regime of Mukhoti et al.'s fixed schedules).
    patience: int | None = 10
    min_delta: float = 1e-5
    seed: int = 0
    progress: bool = True
    optimiser: str = "adam"  # "adam" (fixed lr) or "sgd" (momentum + step schedule, see the module doc)
    momentum: float = 0.9
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of ``epochs`` after which SGD's lr drops ×0.1


@dataclass
class TrainResult:
    model: nn.Module
    best_epoch: int  # 1-based epoch whose weights were kept (the last one when patience is None)
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)


def stratified_batches(y: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled mini-batches whose class proportions follow the data's (AnyLoss needs both classes).

    Each row gets the key (rank within its shuffled class + U(0, 1)) / class size; sorting by the key
    interleaves the classes evenly, and consecutive slices of that order are the batches.
    """
    keys = np.empty(y.shape[0])
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        keys[rng.permutation(idx)] = (np.arange(idx.size) + rng.random(idx.size)) / idx.size
    order = np.argsort(keys, kind="stable")
    n_batches = max(1, math.ceil(y.shape[0] / batch_size))
    return list(np.array_split(order, n_batches))


def make_optimiser(
    model: nn.Module, config: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """The optimiser ``config`` names and, for SGD, its per-epoch step schedule."""
    if config.optimiser == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay), None
    if config.optimiser == "sgd":
        sgd = torch.optim.SGD(
            model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        steps = sorted({max(1, round(f * config.epochs)) for f in config.milestones})
        return sgd, torch.optim.lr_scheduler.MultiStepLR(sgd, milestones=steps, gamma=0.1)
    raise ValueError(f"unknown optimiser {config.optimiser!r}; choose 'adam' or 'sgd'")


def _to_tensors(X: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)


def train_model(model: nn.Module, objective: Objective, split: Split, config: TrainConfig) -> TrainResult:
    """Train ``model`` in place on ``split`` with ``objective``; keep the weights of the best validation loss.

    The model should be built (initialised) inside ``deterministic(seed)`` for full reproducibility;
    ``train_and_export`` does that.  Raises ``TrainingDataError`` on degenerate data.
    """
    check_training_data(split.X_train, split.y_train, min_per_class=1)
    check_training_data(split.X_val, split.y_val, min_per_class=1)
    if objective.binary_only and len(np.unique(split.y_train)) != 2:
        raise ValueError(f"loss {objective.name!r} is for binary tasks only")
    X_train, y_train = _to_tensors(split.X_train, split.y_train)
    X_val, y_val = _to_tensors(split.X_val, split.y_val)
    rng = np.random.default_rng(config.seed)
    result = TrainResult(model=model, best_epoch=0, epochs_run=0, stopped_early=False)
    with deterministic(config.seed):
        optimiser, schedule = make_optimiser(model, config)
        best_loss, best_state, since_best = math.inf, copy.deepcopy(model.state_dict()), 0
        bar = tqdm(range(1, config.epochs + 1), desc=f"train {objective.name}", disable=not config.progress)
        for epoch in bar:
            model.train()
            total = 0.0
            for batch in stratified_batches(split.y_train, config.batch_size, rng):
                idx = torch.as_tensor(batch)
                optimiser.zero_grad()
                loss = objective(model(X_train[idx]), y_train[idx])
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
                total += loss.item() * len(batch)
            if schedule is not None:
                schedule.step()
            model.eval()
            with torch.no_grad():
                val_loss = float(objective(model(X_val), y_val))
            if not math.isfinite(val_loss):
                raise FloatingPointError(f"validation loss became {val_loss} at epoch {epoch}")
            result.history.append({"epoch": epoch, "train_loss": total / len(y_train), "val_loss": val_loss})
            result.epochs_run = epoch
            bar.set_postfix(train=f"{total / len(y_train):.4f}", val=f"{val_loss:.4f}")
            if val_loss < best_loss - config.min_delta:
                best_loss, best_state, since_best = val_loss, copy.deepcopy(model.state_dict()), 0
                result.best_epoch = epoch
            else:
                since_best += 1
                if config.patience is not None and since_best >= config.patience:
                    result.stopped_early = True
                    break
        bar.close()
        if config.patience is None:
            result.best_epoch = result.epochs_run
        else:
            model.load_state_dict(best_state)
        model.eval()
    return result
