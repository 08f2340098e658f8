"""Monitoring response schemas for the OpenAPI document: the calibration window (``GET …/calibration``) and
the label-shift estimate (``GET …/label_shift``); see ``schemas`` for the rest of the contract."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class LabelShift(BaseModel):
    """The EM class-prior estimate of recent unlabelled predictions against the reference prior."""

    model_config = ConfigDict(extra="allow")

    model: str
    version: int
    calibrator_version: int | None
    n_classes: int
    window: dict[str, str]


class Window(BaseModel):
    start: str
    end: str


class ReliabilityBin(BaseModel):
    bin: int
    lo: float
    hi: float
    count: int
    confidence: float | None
    accuracy: float | None


class DriftVerdict(BaseModel):
    model_config = ConfigDict(extra="allow")

    state: str
    reason: str | None = None
    rule: str | None = None


class SliceStats(BaseModel):
    """One slice's window metrics; null while it has no labels."""

    model_config = ConfigDict(extra="allow")

    slice_key: str
    slice_value: str
    labelled: int
    ece: float | None = None
    ece_ci: list[float] | None = None
    mce: float | None = None
    accuracy: float | None = None
    mean_confidence: float | None = None
    confidence_accuracy_gap: float | None = None
    reliability: list[ReliabilityBin]


class Slices(BaseModel):
    """``slice=key:value``: that slice; ``by=key``: every admitted value of the key, then ``other``."""

    slice_key: str
    mode: str
    values: list[SliceStats]


class CalibrationWindow(BaseModel):
    """Window metrics; every metric is null while the window has no labels."""

    model_config = ConfigDict(extra="allow")

    model: str
    version: int
    window: Window
    calibrator_version: int | None
    n_bins: int
    rule: str
    labelled: int
    predicted: int
    label_coverage: float | None = None
    ece: float | None = None
    ece_ci: list[float] | None = None
    mce: float | None = None
    adaptive_ece: float | None = None
    classwise_ece: float | None = None
    brier: float | None = None
    nll: float | None = None
    accuracy: float | None = None
    mean_confidence: float | None = None
    reliability: list[ReliabilityBin]
    drift: DriftVerdict
    reference: dict[str, Any]
    series: list[dict[str, Any]] | None = None
    slices: Slices | None = None
