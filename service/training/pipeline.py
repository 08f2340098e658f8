"""data → objective → train → ONNX export → card + initial calibrator → ``<repository>/<name>/<version>/``.

The version directory is assembled in a hidden staging directory next to it and renamed into place,
so a reader (the registry) never sees a half-written version.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from service.calibration import make_calibrator
from service.repository.card import (
    CALIBRATOR_FILE,
    CONFORMAL_FILE,
    MODEL_FILE,
    DataSpec,
    InputSpec,
    LossSpec,
    ModelCard,
    OutputSpec,
    sha256_of,
    write_card,
)
from service.training.curvature import CurvatureConfig, curvature_report
from service.training.data import Dataset, Split, TrainingDataError, load_dataset, split_dataset
from service.training.evaluation import held_out_metrics, initial_calibrator, initial_conformal
from service.training.export import INPUT_NAME, OUTPUT_NAME, export_onnx, onnx_logits, onnx_session
from service.training.models import Classifier, build_classifier
from service.training.objectives import Objective, make_objective
from service.training.seeding import deterministic
from service.training.trainer import TrainConfig, TrainResult, train_model

CONFORMAL_KINDS = ("lac", "aps", "mondrian_lac", "mondrian_aps", None)

@dataclass
class TrainedClassifier:
    dataset: Dataset
    split: Split
    objective: Objective
    model: Classifier
    result: TrainResult
    arch: str
    hidden: tuple[int, ...]
    config: TrainConfig


def fit_classifier(
    *,
    dataset: str = "digits",
    loss: str = "flsd53",
    gamma: float | None = None,
    beta: float = 1.0,
    seed: int = 0,
    epochs: int = 60,
    hidden: tuple[int, ...] = (64,),
    arch: str = "mlp",
    progress: bool = True,
    data_file: Path | None = None,
    label_column: str | None = None,
    samples: int | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    patience: int | None = 10,
    optimiser: str = "adam",
    weight_decay: float = 0.0,
) -> TrainedClassifier:
    """Load, split (stratified 60/20/20 by ``seed``) and train; no files are written."""
    objective = make_objective(loss, gamma=gamma, beta=beta)
    data = load_dataset(dataset, data_file=data_file, label_column=label_column, samples=samples)
    config = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        seed=seed,
        progress=progress,
        optimiser=optimiser,
        weight_decay=weight_decay,
    )
    return fit_on_split(data, split_dataset(data, seed=seed), objective, config, arch=arch, hidden=hidden)


def fit_on_split(
    data: Dataset,
    split: Split,
    objective: Objective,
    config: TrainConfig,
    *,
    arch: str = "mlp",
    hidden: tuple[int, ...] = (64,),
) -> TrainedClassifier:
    """Build a network under ``config.seed`` and train it on an existing ``split`` of ``data``."""
    if objective.binary_only and len(data.classes) != 2:
        raise TrainingDataError(
            f"loss {objective.name!r} is binary-only; {data.name!r} has {len(data.classes)} classes"
        )
    with deterministic(config.seed):
        model = build_classifier(
            split.X_train, len(data.classes), arch=arch, hidden=hidden, binary_head=objective.binary_only
        )
    result = train_model(model, objective, split, config)
    return TrainedClassifier(data, split, objective, model, result, arch, hidden, config)


def default_lr(optimiser: str) -> float:
    """Adam 1e-3 (our trainer's long-standing default); SGD 0.05 (MNIST-1D CNN, docs/science.md)."""
    return 0.05 if optimiser == "sgd" else 1e-3


def train_and_export(
    *,
    dataset: str = "digits",
    loss: str = "flsd53",
    gamma: float | None = None,
    name: str = "digits",
    version: int = 1,
    repository: Path = Path("models"),
    seed: int = 0,
    epochs: int = 60,
    hidden: tuple[int, ...] = (64,),
    arch: str = "mlp",
    calibrator: str = "auto",
    conformal: str | None = "lac",
    curvature: bool = True,
    progress: bool = True,
    overwrite: bool = False,
    data_file: Path | None = None,
    label_column: str | None = None,
    beta: float = 1.0,
    samples: int | None = None,
    optimiser: str = "adam",
    lr: float | None = None,
    patience: int | None = 10,
    weight_decay: float = 0.0,
) -> Path:
    """Train a classifier and publish it as ``<repository>/<name>/<version>/``; returns that directory.

    Writes ``model.onnx`` (raw features in, logits out), ``card.json`` and ``calibrator.json`` (the
    calibration core's ``method`` choice fitted on the validation split, with its held-out evaluation) and,
    unless ``conformal`` is None, ``conformal.json`` (lac, aps, mondrian_lac or mondrian_aps sets fitted on the
    validation rows the calibrator held out).
    Raises ``FileExistsError`` if the version exists and ``overwrite`` is false, ``TrainingDataError``
    on unusable data and ``ValueError`` on bad options.  ``lr`` defaults to 1e-3 for Adam and 0.05 for
    SGD; ``patience=None`` trains all ``epochs`` and keeps the last weights.
    """
    if version < 1:
        raise ValueError(f"version must be >= 1, got {version}")
    make_calibrator(calibrator)  # an unknown method fails here, not after training
    if conformal not in CONFORMAL_KINDS:
        raise ValueError(f"conformal must be one of {', '.join(map(str, CONFORMAL_KINDS))}; got {conformal!r}")
    model_dir = Path(repository) / name
    version_dir = model_dir / str(version)
    if version_dir.exists() and not overwrite:
        raise FileExistsError(f"{version_dir} already exists; pass overwrite=True (--overwrite) to replace it")
    started = time.perf_counter()
    trained = fit_classifier(
        dataset=dataset,
        loss=loss,
        gamma=gamma,
        beta=beta,
        seed=seed,
        epochs=epochs,
        hidden=hidden,
        arch=arch,
        progress=progress,
        data_file=data_file,
        label_column=label_column,
        samples=samples,
        optimiser=optimiser,
        lr=default_lr(optimiser) if lr is None else lr,
        patience=patience,
        weight_decay=weight_decay,
    )
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{version}-", dir=model_dir))
    try:
        _write_version(
            staging,
            trained,
            name=name,
            version=version,
            seed=seed,
            calibrator=calibrator,
            conformal=conformal,
            curvature=curvature,
            started=started,
        )
        _publish(staging, version_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return version_dir


def _write_version(
    directory: Path,
    trained: TrainedClassifier,
    *,
    name: str,
    version: int,
    seed: int,
    calibrator: str,
    conformal: str | None,
    curvature: bool,
    started: float,
) -> None:
    split, data, objective = trained.split, trained.dataset, trained.objective
    model_path = directory / MODEL_FILE
    export_onnx(trained.model, model_path, data.n_features, seed=seed)
    session = onnx_session(model_path)
    test_metrics = held_out_metrics(onnx_logits(session, split.X_test), split.y_test)
    calibrator_payload = initial_calibrator(
        onnx_logits(session, split.X_val), split.y_val, method=calibrator, seed=seed
    )
    curvature_figures = (
        curvature_report(trained.model, objective, split.X_train, split.y_train, CurvatureConfig(seed=seed))
        if curvature
        else None
    )
    card = ModelCard(
        name=name,
        version=version,
        classes=data.classes,
        input=InputSpec(name=INPUT_NAME, shape=[data.n_features], dtype="float32"),
        output=OutputSpec(name=OUTPUT_NAME, kind="logits"),
        loss=LossSpec(name=objective.name, gamma=objective.gamma, params=dict(objective.params)),
        data=DataSpec(
            dataset=data.name,
            n_train=len(split.y_train),
            n_val=len(split.y_val),
            n_test=len(split.y_test),
            seed=seed,
            split="stratified 60/20/20 train/validation/test (scikit-learn train_test_split)",
        ),
        test_metrics=test_metrics,
        curvature=curvature_figures,
        onnx_sha256=sha256_of(model_path),
        description=_describe(trained, seed=seed, seconds=time.perf_counter() - started),
    )
    write_card(directory, card)
    (directory / CALIBRATOR_FILE).write_text(json.dumps(calibrator_payload, indent=2) + "\n")
    if conformal is not None:
        conformal_payload = initial_conformal(
            onnx_logits(session, split.X_val), split.y_val, calibrator_payload, kind=conformal, seed=seed
        )
        (directory / CONFORMAL_FILE).write_text(json.dumps(conformal_payload) + "\n")
    os.chmod(directory, 0o755)  # mkdtemp makes it 0700; the server may run as another user


def _describe(trained: TrainedClassifier, *, seed: int, seconds: float) -> str:
    result, objective, config = trained.result, trained.objective, trained.config
    optimiser = (
        f"SGD momentum {config.momentum}, lr {config.lr} ×0.1 at {list(config.milestones)} of the epochs"
        if config.optimiser == "sgd"
        else f"Adam lr {config.lr}"
    )
    regime = "fixed epochs, last weights" if config.patience is None else f"early stopping (patience {config.patience})"
    text = (
        f"{trained.arch} {list(trained.hidden)} trained with {objective.name} ({optimiser}, {regime}, "
        f"seed {seed}); kept epoch {result.best_epoch} of {result.epochs_run}"
        f"{' (early stop)' if result.stopped_early else ''}; built in {seconds:.1f}s. "
        "Input: raw features (standardisation is inside the graph)."
    )
    if objective.binary_only:
        text += " Binary AnyLoss head: logits are [0, z], so softmax gives sigmoid(z) for the positive class."
    return text


def _publish(staging: Path, version_dir: Path) -> None:
    """Rename ``staging`` to ``version_dir``; an existing version is moved aside first, then removed."""
    old: Path | None = None
    if version_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".replaced-{version_dir.name}-", dir=version_dir.parent))
        os.rename(version_dir, old / version_dir.name)
    os.rename(staging, version_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
