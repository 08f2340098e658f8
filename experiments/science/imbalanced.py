"""AnyLoss study (Han et al. 2024): imbalanced binary tasks, AnyLoss-F1 / -G-mean / -balanced-accuracy
against CE at threshold 0.5 and CE at the threshold that maximises validation F1.

Tasks: MNIST-1D digit 0 against the rest with the positives subsampled to 5% and to 1% (1-D CNN), and
breast_cancer with the malignant class subsampled to 10% (MLP, 64 units).  Each seed redraws the
positive subsample, the split and the initialisation.  Training: Adam lr 1e-3, batch 256 (stratified,
so every batch holds positives), early stopping on the validation loss (our trainer's default).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from scipy.special import softmax
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import balanced_accuracy_score, f1_score, precision_recall_curve

from experiments.science.config import Config
from experiments.science.focal import logits_of, mnist1d
from service.calibration import make_calibrator, metrics
from service.training.data import Dataset, split_dataset
from service.training.objectives import make_objective
from service.training.pipeline import fit_on_split
from service.training.trainer import TrainConfig

ECE_BINS = 15
LOSSES = {
    "CE": "cross_entropy",
    "AnyLoss-F1": "anyloss_f1",
    "AnyLoss-G-mean": "anyloss_gmean",
    "AnyLoss-BA": "anyloss_balanced_accuracy",
}
RULES = ("CE@0.5", "CE@tuned", "AnyLoss-F1", "AnyLoss-G-mean", "AnyLoss-BA")


@dataclass(frozen=True)
class Task:
    label: str
    source: str  # "mnist1d" or "breast_cancer"
    positive_rate: float
    arch: str


TASKS = (
    Task("MNIST-1D 0-vs-rest 5%", "mnist1d", 0.05, "cnn1d"),
    Task("MNIST-1D 0-vs-rest 1%", "mnist1d", 0.01, "cnn1d"),
    Task("breast_cancer 10% malignant", "breast_cancer", 0.10, "mlp"),
)


@lru_cache(maxsize=2)
def _binary_source(source: str, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """(X, is_positive) before subsampling."""
    if source == "mnist1d":
        data = mnist1d(samples)
        return data.X, data.y == 0
    bunch = load_breast_cancer()
    return bunch.data.astype(np.float32), bunch.target == 0  # target 0 is malignant


def imbalanced_dataset(task: Task, samples: int, seed: int) -> Dataset:
    """All negatives and a seeded subsample of positives making ``positive_rate`` of the rows."""
    X, positive = _binary_source(task.source, samples)
    neg, pos = np.flatnonzero(~positive), np.flatnonzero(positive)
    n_pos = max(5 * 5, round(task.positive_rate / (1 - task.positive_rate) * neg.size))
    keep = np.concatenate([neg, np.random.default_rng(seed).choice(pos, size=min(n_pos, pos.size), replace=False)])
    keep.sort()
    return Dataset(task.label, X[keep], positive[keep].astype(np.int64), ["rest", "positive"])


def tuned_threshold(p_val: np.ndarray, y_val: np.ndarray) -> float:
    """The validation-F1-maximising threshold on P(positive)."""
    precision, recall, thresholds = precision_recall_curve(y_val, p_val)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def _rule_scores(p_test: np.ndarray, y_test: np.ndarray, threshold: float) -> dict[str, float]:
    pred = (p_test >= threshold).astype(np.int64)
    return {
        "f1": float(f1_score(y_test, pred, zero_division=0.0)),
        "balanced_accuracy": float(balanced_accuracy_score(y_test, pred)),
    }


def imbalanced_run(cfg: Config, task: Task, seed: int) -> list[dict[str, Any]]:
    """Train CE and the three AnyLoss arms on one seed; one row per decision rule."""
    torch.set_num_threads(1)
    data = imbalanced_dataset(task, cfg.anyloss_samples, seed)
    split = split_dataset(data, seed=seed)
    rows = []
    for arm, loss in LOSSES.items():
        config = TrainConfig(epochs=cfg.anyloss_epochs, batch_size=256, lr=1e-3, seed=seed, progress=False)
        hidden = () if task.arch == "cnn1d" else (64,)
        trained = fit_on_split(data, split, make_objective(loss), config, arch=task.arch, hidden=hidden)
        z_val, z_test = logits_of(trained.model, split.X_val), logits_of(trained.model, split.X_test)
        probs_test = softmax(z_test, axis=1)
        ts = make_calibrator("temperature").fit(z_val, split.y_val)
        calibration = {
            "ece_raw": metrics.ece(probs_test, split.y_test, n_bins=ECE_BINS),
            "ece_TS": metrics.ece(ts.predict_proba(z_test), split.y_test, n_bins=ECE_BINS),
            "n_test_positive": int(split.y_test.sum()),
        }
        thresholds = {arm: 0.5}
        if arm == "CE":
            thresholds = {"CE@0.5": 0.5, "CE@tuned": tuned_threshold(softmax(z_val, axis=1)[:, 1], split.y_val)}
        for rule, threshold in thresholds.items():
            row = {"task": task.label, "rule": rule, "seed": seed, "threshold": threshold, **calibration}
            rows.append(row | _rule_scores(probs_test[:, 1], split.y_test, threshold))
    return rows
