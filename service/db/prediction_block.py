"""One request's rows as the spool stores them: ``PredictionBlock`` and its msgpack record format (maps of raw
little-endian arrays, no pickle; the time as integer microseconds)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
import numpy as np

from service.db.decision_stats import ServedBlock


@dataclass(slots=True)
class PredictionBlock:
    """The rows of one request: the same model, versions, time and tags; per-row arrays.

    Not frozen: a frozen dataclass sets each field through ``object.__setattr__`` (~3 µs for these eleven), paid
    once per request on the event loop and once per record in the ship process. Nothing mutates a block."""

    model: str
    version: int
    calibrator_version: int
    created_at: datetime
    ids: list[str]
    logits: np.ndarray  # (n, K) float32 little-endian
    probabilities: np.ndarray  # (n, K) float32 little-endian
    confidence: np.ndarray  # (n,)
    class_index: np.ndarray  # (n,)
    tags: dict[str, Any] | None = None
    served: ServedBlock | None = None  # sets / decisions, when the request asked for them


def _raw(a: np.ndarray | None, dtype: str) -> bytes | None:
    return None if a is None else np.ascontiguousarray(a, dtype=dtype).tobytes()


def _encode_served(s: ServedBlock) -> dict[str, Any]:
    return {"mask": _raw(s.set_mask, "u1"), "act": _raw(s.actions, "<i8"), "cost": _raw(s.expected_cost, "<f8"),
            "cfv": s.conformal_version, "cov": s.coverage, "cmv": s.cost_matrix_version, "minc": s.min_confidence}


def _decode_served(d: dict[str, Any], k: int) -> ServedBlock:
    mask = None if d["mask"] is None else np.frombuffer(d["mask"], dtype="u1").reshape(-1, k).astype(bool)
    act = None if d["act"] is None else np.frombuffer(d["act"], dtype="<i8")
    cost = None if d["cost"] is None else np.frombuffer(d["cost"], dtype="<f8")
    return ServedBlock(mask, act, cost, d["cfv"], d["cov"], d["cmv"], d["minc"])


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
_packers = threading.local()  # msgpack.Packer is not thread-safe; one per thread, reused (no buffer per call)


def _packer() -> msgpack.Packer:
    packer: msgpack.Packer | None = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer()
    return packer


def le_bytes(a: np.ndarray, dtype: str) -> bytes:
    """The array's bytes in a little-endian dtype, C order (no copy when it already is)."""
    return (a if a.dtype == dtype and a.flags.c_contiguous else np.ascontiguousarray(a, dtype=dtype)).tobytes()


def encode(block: PredictionBlock) -> bytes:
    """The block as a msgpack map; the time as integer microseconds since the epoch (``us``: exact, and an
    isoformat string costs ~2 µs each way). ``decode`` still reads the ``at`` strings of older spools."""
    n, k = block.logits.shape
    at = block.created_at
    when = {"us": (at - EPOCH) // MICROSECOND} if at.tzinfo is not None else {"at": at.isoformat()}  # naive: as is
    out: bytes = _packer().pack({
        "model": block.model, "version": block.version, "cv": block.calibrator_version, **when, "ids": block.ids,
        "k": k,
        "logits": le_bytes(block.logits, "<f4"), "probs": le_bytes(block.probabilities, "<f4"),
        "conf": le_bytes(block.confidence, "<f8"), "cls": le_bytes(block.class_index, "<i8"), "tags": block.tags,
        **({"served": _encode_served(block.served)} if block.served is not None else {}),
    })
    return out


def decode(payload: bytes) -> PredictionBlock:
    d = msgpack.unpackb(payload)
    k = int(d["k"])
    at = EPOCH + int(d["us"]) * MICROSECOND if "us" in d else datetime.fromisoformat(d["at"])
    return PredictionBlock(
        d["model"], int(d["version"]), int(d["cv"]), at, d["ids"],
        np.frombuffer(d["logits"], dtype="<f4").reshape(-1, k), np.frombuffer(d["probs"], dtype="<f4").reshape(-1, k),
        np.frombuffer(d["conf"], dtype="<f8"), np.frombuffer(d["cls"], dtype="<i8"), d["tags"],
        _decode_served(d["served"], k) if d.get("served") is not None else None,
    )
