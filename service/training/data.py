"""Training data: scikit-learn's bundled datasets or a user CSV/NPZ file, and a stratified 3-way split.

Nothing is downloaded: ``digits``, ``breast_cancer``, ``wine`` and ``iris`` ship inside scikit-learn, and
``mnist1d`` is generated at run time by the ``mnist1d`` package's procedural generator (``make_dataset``
with our own arguments; its URL loader ``get_dataset`` is never called).
Labels are encoded as 0..K−1 in the sorted order of their values; the class names are recorded.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import datasets as skdatasets
from sklearn.model_selection import train_test_split

MIN_ROWS_PER_CLASS = 5
MNIST1D_DEFAULT_SAMPLES = 5000  # the package's default (4,000 train + 1,000 test in the paper)
MNIST1D_SEED = 42  # the package's default generator seed; our split seeds are separate

BUNDLED: dict[str, Callable[..., Any]] = {
    "digits": skdatasets.load_digits,
    "breast_cancer": skdatasets.load_breast_cancer,
    "wine": skdatasets.load_wine,
    "iris": skdatasets.load_iris,
}


class TrainingDataError(ValueError):
    """The data cannot train a classifier (one class, NaN/inf features, too few rows, bad file)."""


@dataclass(frozen=True)
class Dataset:
    name: str
    X: np.ndarray  # (n, d) float32
    y: np.ndarray  # (n,) int64 in 0..K-1
    classes: list[str]

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])


@dataclass(frozen=True)
class Split:
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def check_training_data(X: np.ndarray, y: np.ndarray, *, min_per_class: int = MIN_ROWS_PER_CLASS) -> None:
    """Raise ``TrainingDataError`` unless X is a finite 2-D matrix and y has ≥ 2 classes of ≥ min rows."""
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise TrainingDataError(f"features must be (n, d) with one label per row; got {X.shape} and {y.shape}")
    if X.shape[1] == 0:
        raise TrainingDataError("the data has no feature columns")
    bad = ~np.isfinite(X)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise TrainingDataError(
            f"features contain {int(bad.sum())} NaN/inf values (first at row {rows[0]}, column {cols[0]})"
        )
    values, counts = np.unique(y, return_counts=True)
    if values.size < 2:
        raise TrainingDataError(f"need at least two classes to train a classifier; found {values.size}")
    if counts.min() < min_per_class:
        rare = values[counts.argmin()]
        raise TrainingDataError(
            f"class {rare!r} has only {counts.min()} rows; each class needs at least {min_per_class}"
        )


def _encode(name: str, X: Any, labels: Any) -> Dataset:
    X_arr = np.asarray(X, dtype=np.float32)
    raw = np.asarray(labels)
    if raw.ndim != 1:
        raise TrainingDataError(f"labels must be one-dimensional; got shape {raw.shape}")
    values, y = np.unique(raw, return_inverse=True)
    dataset = Dataset(name=name, X=X_arr, y=y.astype(np.int64), classes=[str(v) for v in values])
    check_training_data(dataset.X, dataset.y)
    return dataset


def load_bundled(name: str) -> Dataset:
    """One of scikit-learn's bundled datasets, with its target names as class names."""
    try:
        bunch = BUNDLED[name]()
    except KeyError:
        raise TrainingDataError(f"unknown dataset {name!r}; choose from {sorted(BUNDLED)}") from None
    dataset = _encode(name, bunch.data, bunch.target)
    return Dataset(name, dataset.X, dataset.y, [str(n) for n in bunch.target_names])


def load_mnist1d(n_samples: int = MNIST1D_DEFAULT_SAMPLES, *, seed: int = MNIST1D_SEED) -> Dataset:
    """MNIST-1D (Greydanus & Kobak 2024): 10 classes of 40-feature sequences, generated, never downloaded.

    The generator's own train/test cut is discarded (``split_dataset`` redraws one per seed), so all
    ``n_samples`` rows (rounded down to a multiple of 10) come back.  ``make_dataset`` reseeds the global
    ``random``/``numpy.random`` state; the caller's state is restored afterwards.
    """
    if n_samples < 10 * MIN_ROWS_PER_CLASS * 5:
        raise TrainingDataError(f"mnist1d needs --samples of at least 250 (50 per class); got {n_samples}")
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed, args.train_split = int(n_samples), int(seed), 1.0
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        generated = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return _encode("mnist1d", generated["x"], generated["y"])


def load_csv(path: Path, *, label_column: str | None = None, name: str | None = None) -> Dataset:
    """CSV with a header row; the label column is named (default: the last column), the rest are features."""
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        raise TrainingDataError(f"{path} needs a header row and at least one data row")
    header, body = rows[0], [r for r in rows[1:] if r]
    label_name = label_column if label_column is not None else header[-1]
    if label_name not in header:
        raise TrainingDataError(f"label column {label_name!r} not in the header of {path}: {header}")
    j = header.index(label_name)
    if any(len(r) != len(header) for r in body):
        raise TrainingDataError(f"{path}: every row must have {len(header)} columns")
    try:
        X = [[float(v) for i, v in enumerate(r) if i != j] for r in body]
    except ValueError as exc:
        raise TrainingDataError(f"{path}: feature columns must be numeric ({exc})") from None
    labels = [r[j] for r in body]
    return _encode(name or path.stem, np.array(X, dtype=np.float64).reshape(len(body), -1), _as_numbers(labels))


def _as_numbers(labels: list[str]) -> np.ndarray:
    """Numeric labels sort numerically ("2" before "10"); others sort as strings."""
    try:
        numbers = np.array([float(v) for v in labels])
    except ValueError:
        return np.array(labels)
    return numbers.astype(np.int64) if np.all(numbers == np.round(numbers)) else numbers


def load_npz(path: Path, *, name: str | None = None) -> Dataset:
    """NPZ with arrays ``X`` (n, d) and ``y`` (n,)."""
    with np.load(path, allow_pickle=False) as archive:
        missing = {"X", "y"} - set(archive.files)
        if missing:
            raise TrainingDataError(f"{path} must hold arrays 'X' and 'y'; missing {sorted(missing)}")
        return _encode(name or path.stem, archive["X"], archive["y"])


def load_dataset(
    name: str, *, data_file: Path | None = None, label_column: str | None = None, samples: int | None = None
) -> Dataset:
    """A bundled or generated dataset by ``name``, or ``data_file`` (.csv or .npz) recorded under ``name``.

    ``samples`` is the number of rows to generate (``mnist1d`` only).
    """
    if samples is not None and (data_file is not None or name != "mnist1d"):
        raise TrainingDataError("--samples applies to the generated dataset mnist1d only")
    if data_file is None:
        if name == "mnist1d":
            return load_mnist1d(MNIST1D_DEFAULT_SAMPLES if samples is None else samples)
        return load_bundled(name)
    suffix = data_file.suffix.lower()
    if suffix == ".csv":
        return load_csv(data_file, label_column=label_column, name=name)
    if suffix == ".npz":
        return load_npz(data_file, name=name)
    raise TrainingDataError(f"unsupported data file {data_file}: use .csv or .npz")


def split_dataset(dataset: Dataset, *, seed: int = 0, val: float = 0.2, test: float = 0.2) -> Split:
    """Stratified train/validation/test split (default 60/20/20), reproducible from ``seed``."""
    X, y = dataset.X, dataset.y
    try:
        X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=test, stratify=y, random_state=seed)
        X_train, X_val, y_train, y_val = train_test_split(
            X_rest, y_rest, test_size=val / (1 - test), stratify=y_rest, random_state=seed
        )
    except ValueError as exc:
        raise TrainingDataError(f"cannot split {dataset.name!r} into train/validation/test: {exc}") from None
    return Split(X_train, y_train, X_val, y_val, X_test, y_test)
