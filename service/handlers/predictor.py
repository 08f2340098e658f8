"""The predict path's one core object, shared by native REST (/v1) and the Open Inference Protocol (/v2).

read body → resolve the version → decode (the wire codec) → validate rows → score (inline, or in a
worker thread for a batching model: the same rule for every transport) → active calibrator → prediction
log → render (the codec) — timed and counted here, once, with label values taken only from loaded models.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from service.calibration.base import softmax
from service.db.decision_stats import ServedBlock
from service.db.writer import PredictionBlock, PredictionWriter, SpoolFull
from service.errors import InvalidInput, PayloadTooLarge, PredictionLogFull, ServiceError
from service.handlers.decision_options import DecisionAsk, Served, apply_ask
from service.handlers.ids import uuid7_strings
from service.monitoring.metrics import ServiceMetrics
from service.repository.loaded import ActiveCalibration, LoadedVersion
from service.repository.registry import Registry

UNKNOWN_MODEL = "unknown"  # the one label value for every model name this server does not serve


@dataclass
class PredictionBatch:
    loaded: LoadedVersion
    serving: ActiveCalibration
    logits: np.ndarray  # (n, K) raw scores (log-probabilities for probability models)
    probabilities: np.ndarray  # (n, K) calibrated
    class_index: np.ndarray  # (n,)
    confidence: np.ndarray  # (n,)
    prediction_ids: list[str]
    served: Served | None = None  # sets / decisions, when the request asked for them

    @property
    def classes(self) -> list[str]:
        return self.loaded.card.classes

    def raw_probabilities(self) -> np.ndarray:
        return softmax(self.logits)


@dataclass
class Decoded:
    """What every wire format yields: (n, n_features) rows and the request's tags; codecs add their own."""

    rows: np.ndarray
    tags: dict[str, Any] | None
    ask: DecisionAsk | None = None  # coverage / min_confidence / decision


D = TypeVar("D", bound=Decoded)


@dataclass(slots=True)
class Rendered:
    body: bytes
    media_type: str = "application/json"
    headers: Mapping[str, str] | None = None


class WireCodec(Protocol, Generic[D]):
    """A transport's request and response format (``v1_codec``, ``oip``)."""

    endpoint: str  # the ``endpoint`` metric label

    def decode(self, body: bytes, headers: Mapping[str, str], loaded: LoadedVersion) -> D: ...

    def render(self, batch: PredictionBatch, decoded: D) -> Rendered: ...


def validate_rows(rows: np.ndarray, loaded: LoadedVersion) -> np.ndarray:
    """(n, n_features) rows, finite in the dtype the model computes in (1e39 is finite in float64 but
    infinite in float32), cast to that dtype."""
    n_features = loaded.classifier.n_features
    if rows.ndim != 2 or rows.shape[1] != n_features:
        raise InvalidInput(f"each instance needs {n_features} features, got {rows.shape[1] if rows.ndim == 2 else 0}")
    with np.errstate(over="ignore", invalid="ignore"):
        x = rows.astype(loaded.classifier.input_dtype, copy=False)
    finite = np.isfinite(x)
    if not finite.all():
        bad = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise InvalidInput(f"instance {bad} contains NaN, infinity or a value beyond the model's "
                           f"{np.dtype(loaded.classifier.input_dtype).name} range")
    return x


class Predictor:
    def __init__(self, *, registry: Registry, writer: PredictionWriter, metrics: ServiceMetrics,
                 max_batch_rows: int = 10_000, request_metrics: bool = True) -> None:
        self.registry = registry
        self.max_batch_rows = max_batch_rows
        self.request_metrics = request_metrics  # off only to measure what the metrics cost (bench serving)
        self.writer = writer
        self.metrics = metrics
        # label children resolved once per (endpoint, model, version[, calibrator]): ``.labels()`` costs
        # a lock and a dict lookup per call, and the keys are bounded by what is loaded
        self._children: dict[tuple[str, ...], Any] = {}

    async def predict(self, codec: WireCodec[D], model: str, ref: str | None,
                      read_body: Callable[[], Awaitable[bytes]], headers: Mapping[str, str]) -> Rendered:
        started = time.perf_counter()
        loaded: LoadedVersion | None = None
        try:
            body = await read_body()
            loaded = self.registry.resolve(model, ref)
            decoded = codec.decode(body, headers, loaded)
            batch = await self.run(loaded, validate_rows(decoded.rows, loaded), decoded.tags, decoded.ask)
            rendered = codec.render(batch, decoded)
        except ServiceError as exc:
            self._count(codec.endpoint, model, loaded, exc.status_code)
            raise
        except Exception:
            self._count(codec.endpoint, model, loaded, 500)
            raise
        if self.request_metrics:
            version = str(loaded.version)
            self._child("latency", codec.endpoint, model, version).observe(time.perf_counter() - started)
            self._child("requests", codec.endpoint, model, version, "200").inc()
        return rendered

    def inline(self, model: str, ref: str | None) -> bool:
        """Whether ``predict`` for (model, ref) runs to its end without suspending, given a body already read:
        every version but a batching one (its rows go to a worker thread), and every request that fails to
        resolve (answered at once)."""
        try:
            return not self.registry.resolve(model, ref).classifier.batching
        except ServiceError:
            return True

    async def run(self, loaded: LoadedVersion, rows: np.ndarray, tags: dict[str, Any] | None,
                  ask: DecisionAsk | None = None) -> PredictionBatch:
        """Score, calibrate, decide and log validated rows; the serving state (calibrator, conformal sets,
        cost matrix) is read once for the whole request."""
        serving = loaded.serving
        assert serving is not None  # resolve() guarantees it
        n, k = len(rows), len(loaded.card.classes)
        if n > self.max_batch_rows or not self.writer.fits(n, 8 * k + 64):  # refused before it is served
            raise PayloadTooLarge(f"a request holds at most {self.max_batch_rows} rows (and what the "
                                  f"prediction log can keep); got {n}")
        if loaded.classifier.batching:  # batches form only across threads
            logits = await asyncio.to_thread(loaded.classifier.scores, rows)
        else:  # a small model runs faster inline than the ~100 µs a thread hop costs
            logits = loaded.classifier.scores(rows)
        probs = serving.calibrator.predict_proba(logits)
        class_index = probs.argmax(axis=1)
        confidence = probs.max(axis=1)  # the value at class_index (argmax is the first maximum)
        served = apply_ask(ask, probs, loaded, serving) if ask is not None else None  # before logging: may refuse
        ids = uuid7_strings(len(logits))
        try:  # durable in the local spool before any id leaves this process
            self.writer.submit(PredictionBlock(
                loaded.name, loaded.version, serving.calibrator_version, datetime.now(UTC), ids,
                logits.astype("<f4"), probs.astype("<f4"), confidence, class_index, tags,
                served_block(served) if served is not None else None,
            ))
        except SpoolFull as exc:
            raise PredictionLogFull(str(exc)) from None
        labels = (loaded.name, str(loaded.version), str(serving.calibrator_version))
        if self.request_metrics:
            self._child("predictions", *labels).inc(len(ids))
        if served is not None and served.decided.actions is not None:  # served decisions feed a ratio: always
            abstained = int((served.decided.actions < 0).sum())
            self.metrics.decisions.observe_served(*labels, abstained=abstained, acted=len(ids) - abstained)
        return PredictionBatch(loaded, serving, logits, probs, class_index, confidence, ids, served)

    def _count(self, endpoint: str, model: str, loaded: LoadedVersion | None, status: int) -> None:
        known = model if model in self.registry.models else UNKNOWN_MODEL
        version = str(loaded.version) if loaded is not None else ""
        self._child("requests", endpoint, known, version, str(status)).inc()

    def _child(self, metric: str, *labels: str) -> Any:
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = getattr(self.metrics, metric).labels(*labels)
        return child


def served_block(served: Served) -> ServedBlock:
    d, ask = served.decided, served.ask
    return ServedBlock(d.set_mask, d.actions, d.expected_cost, served.conformal_version,
                       ask.coverage if d.set_mask is not None else None, served.cost_matrix_version,
                       ask.min_confidence)
