"""Tabular study: HistGradientBoosting and RandomForest (scikit-learn) with each post-hoc calibrator
fitted on the validation split's log-probabilities (as the server calibrates probability models).

Datasets: ``make_classification`` (4 classes, 20 features of which 10 informative, generated once with
random_state 0) and the bundled ``digits``.  Each seed redraws the 60/20/20 split and the model's seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from sklearn.datasets import load_digits, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from experiments.science.config import Config
from service.calibration import make_calibrator, metrics
from service.calibration.base import logits_from_probabilities
from service.training.data import Dataset, split_dataset

ECE_BINS = 15
CALIBRATORS = ("identity", "temperature", "focal_temperature", "dirichlet", "isotonic", "auto")
MODELS = ("HistGradientBoosting", "RandomForest")
PICTURE = ("synthetic", "HistGradientBoosting")


@dataclass(frozen=True)
class TabularTask:
    dataset: str
    model: str


def tabular_tasks() -> tuple[TabularTask, ...]:
    return tuple(TabularTask(d, m) for d in ("synthetic", "digits") for m in MODELS)


@lru_cache(maxsize=2)
def tabular_data(name: str, samples: int) -> Dataset:
    if name == "synthetic":
        X, y = make_classification(n_samples=samples, n_features=20, n_informative=10, n_classes=4, random_state=0)
    else:
        X, y = load_digits(return_X_y=True)
    return Dataset(name, X.astype(np.float32), y.astype(np.int64), [str(c) for c in np.unique(y)])


def _model(name: str, cfg: Config, seed: int) -> Any:
    if name == "HistGradientBoosting":
        return HistGradientBoostingClassifier(random_state=seed)
    return RandomForestClassifier(n_estimators=cfg.forest_trees, random_state=seed, n_jobs=1)


def tabular_run(cfg: Config, task: TabularTask, seed: int) -> list[dict[str, Any]]:
    """Fit one model on one seed's split; one row per calibrator."""
    split = split_dataset(tabular_data(task.dataset, cfg.tabular_samples), seed=seed)
    model = _model(task.model, cfg, seed).fit(split.X_train, split.y_train)
    z_val = logits_from_probabilities(model.predict_proba(split.X_val))
    z_test = logits_from_probabilities(model.predict_proba(split.X_test))
    rows = []
    for method in CALIBRATORS:
        cal = make_calibrator(method, seed=seed) if method == "auto" else make_calibrator(method)
        cal.fit(z_val, split.y_val)
        probs = cal.predict_proba(z_test)
        row: dict[str, Any] = {"dataset": task.dataset, "model": task.model, "calibrator": method, "seed": seed}
        row |= {
            "nll": metrics.nll(probs, split.y_test),
            "ece": metrics.ece(probs, split.y_test, n_bins=ECE_BINS),
            "accuracy": metrics.accuracy(probs, split.y_test),
        }
        if method == "auto":
            row["auto_choice"] = cal.to_dict()["params"]["chosen"]["method"]
        if (task.dataset, task.model) == PICTURE and method in ("identity", "temperature", "focal_temperature"):
            row["_pictures"] = {"labels": split.y_test, "probs": probs.astype(np.float32)}
        rows.append(row)
    return rows
