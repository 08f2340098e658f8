"""Response (and raw-body request) schemas for the OpenAPI document: the contract clients and schemathesis
check. Routes render with orjson for speed, so these models document the bodies; tests/api/test_openapi.py
checks real responses against them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.validation import INT32_MAX


class ErrorBody(BaseModel):
    """Every error: one sentence saying what was wrong."""

    error: str


# ---- feedback ----------------------------------------------------------------------------------------
class FeedbackItemResult(BaseModel):
    prediction_id: str
    status: Literal["accepted", "duplicate", "conflict", "unknown", "invalid"]
    label: int | None = None
    stored_label: int | None = None
    detail: str | None = None


class FeedbackResponse(BaseModel):
    counts: dict[str, int]
    items: list[FeedbackItemResult]


FEEDBACK_REQUEST = {"type": "object", "required": ["items"], "properties": {"items": {
    "type": "array", "minItems": 1, "items": {
        "type": "object", "required": ["prediction_id", "label"],
        "properties": {"prediction_id": {"type": "string", "format": "uuid"},
                       "label": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}}}}}}


# ---- models and calibrators ---------------------------------------------------------------------------
class ModelVersionPublic(BaseModel):
    version: int
    classes: list[str]
    loss: dict[str, Any]
    calibrator_version: int | None
    calibration_method: str | None


class ModelPublic(BaseModel):
    name: str
    versions: list[ModelVersionPublic]
    errors: dict[str, str]
    aliases: dict[str, int]


class ModelsList(BaseModel):
    models: list[ModelPublic]


class CalibratorPublic(BaseModel):
    calibrator_version: int
    method: str
    params: dict[str, Any]
    state: Literal["candidate", "active", "retired"]
    source: str
    fit_window: dict[str, Any] | None
    n_fit: int | None
    evaluation: dict[str, Any] | None
    created_at: str
    created_by: str
    activated_at: str | None
    previous_active: int | None


class CalibratorHistory(BaseModel):
    model: str
    version: int
    calibrators: list[CalibratorPublic]


class CostMatrixPublic(BaseModel):
    """One cost-matrix version: C[action][class], its actions and its state."""

    model_config = ConfigDict(extra="allow")

    model: str
    cost_matrix_version: int
    matrix: list[list[float]]
    actions: list[str]
    state: str


class CostMatrices(BaseModel):
    cost_matrices: list[CostMatrixPublic]


# ---- admin --------------------------------------------------------------------------------------------
class AliasBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=INT32_MAX)


class RefitResult(BaseModel):
    model: str
    version: int
    method: str
    params: dict[str, Any]
    n_labels: int
    evaluation: dict[str, Any]
    better_than_active: bool
    dry_run: bool
    activated: bool
    calibrator_version: int | None
    state: str | None = None
    in_shadow: bool = False  # activate=if_better_in_shadow: stored and put in shadow


class ActivationResult(BaseModel):
    model: str
    version: int
    calibrator_version: int
    previous_calibrator_version: int | None
    state: Literal["active"]


class AliasResult(BaseModel):
    model: str
    alias: str
    version: int


class AuditEntry(BaseModel):
    at: str
    actor: str
    action: str
    model: str | None
    version: int | None
    detail: Any


class AuditLog(BaseModel):
    entries: list[AuditEntry]


class RepositoryIndexEntry(BaseModel):
    name: str
    version: str
    state: Literal["READY", "UNAVAILABLE"]
    reason: str


REPOSITORY_REQUEST = {"type": "object", "properties": {
    "ready": {"type": "boolean"}, "parameters": {"type": "object", "properties": {
        "config": {"type": "string"}, "unload_dependents": {"type": "boolean"}}}}}

# ---- Open Inference Protocol ------------------------------------------------------------------------
class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class DatabaseState(BaseModel):
    reachable: bool
    checked_seconds_ago: float
    error: str | None


class PredictionLogState(BaseModel):
    model_config = ConfigDict(extra="allow")

    queue_depth: int
    dropped: int
    saturated: bool


class Ready(BaseModel):
    """Also the 503 body: readiness says why it is not ready."""

    ready: bool
    database: DatabaseState
    prediction_log: PredictionLogState
    models: dict[str, dict[str, Any]]
    control_process: bool | None = Field(
        default=None, description="Whether the control process answers (absent when the server runs none).")


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, str | int | float | bool]


class ModelReady(BaseModel):
    name: str
    ready: bool
    error: str | None = None

