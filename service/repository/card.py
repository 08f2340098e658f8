"""The model card (`card.json`): what a served ONNX classifier is, how it was trained, how good it was.

Written by `service.training` (or `calibserve register` for ONNX files produced elsewhere) and read by
the registry when a version is loaded. Validated by pydantic, so a broken card is a load error, not a 500.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CARD_FILE = "card.json"
MODEL_FILE = "model.onnx"
CALIBRATOR_FILE = "calibrator.json"
CONFORMAL_FILE = "conformal.json"  # optional: the training-time conformal calibrator (on calibrator.json's output)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class InputSpec(_Strict):
    name: str
    shape: list[int] = Field(description="Per-row shape; -1 marks a dynamic axis (the batch axis is omitted).")
    dtype: Literal["float32", "float64"] = "float32"


class OutputSpec(_Strict):
    name: str
    kind: Literal["logits", "probabilities"]


class LossSpec(_Strict):
    name: str = Field(description="cross_entropy | focal | flsd53 | flsd52 | anyloss_<metric> | unknown")
    gamma: float | None = None
    params: dict[str, float | int | str] = Field(default_factory=dict)


class DataSpec(_Strict):
    dataset: str
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    seed: int = 0
    split: str = Field(default="stratified", description="How train/validation/test were drawn.")


class EvalMetrics(_Strict):
    """Test-set metrics before any post-hoc calibration."""

    accuracy: float | None = None
    ece: float | None = None
    adaptive_ece: float | None = None
    nll: float | None = None


class ModelCard(_Strict):
    name: str
    version: int = Field(ge=1)
    classes: list[str] = Field(min_length=2)
    input: InputSpec
    output: OutputSpec
    loss: LossSpec = Field(default_factory=lambda: LossSpec(name="unknown"))
    data: DataSpec | None = None
    test_metrics: EvalMetrics = Field(default_factory=EvalMetrics)
    curvature: dict[str, float] | None = Field(
        default=None, description="Kimura & Naganuma 2024 diagnostics: hessian eigenvalue/trace per loss."
    )
    onnx_sha256: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    description: str = ""

    @property
    def n_features(self) -> int:
        n = 1
        for d in self.input.shape:
            n *= max(d, 1)
        return n


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_card(directory: Path) -> ModelCard:
    return ModelCard.model_validate_json((directory / CARD_FILE).read_text())


def write_card(directory: Path, card: ModelCard) -> Path:
    path = directory / CARD_FILE
    path.write_text(card.model_dump_json(indent=2) + "\n")
    return path
