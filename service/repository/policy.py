"""Per-model configuration (``models/<name>/config.json``): which versions of a model are served.

    {"version_policy": {"latest": 2}}          the two highest version numbers
    {"version_policy": {"all": {}}}            every version directory (the default, no file needed)
    {"version_policy": {"specific": [1, 3]}}   exactly these versions

    {"dynamic_batching": {"max_batch_size": 64, "max_queue_delay_microseconds": 0}}   (off by default)

Triton's protobuf-JSON spelling (``{"latest": {"num_versions": 2}}``, ``{"specific": {"versions": [1, 3]}}``)
is accepted too, so a Triton ``load`` request's ``config`` override means the same here. Unlike Triton
(default: latest 1) the default is ``all``: calibserve is usually asked for several versions side by side
(aliases ``production``/``staging``), and serving an extra small ONNX session costs little.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

CONFIG_FILE = "config.json"


class PolicyError(ValueError):
    """``config.json`` (or a load request's config override) is not a valid model configuration."""


@dataclass(frozen=True)
class VersionPolicy:
    kind: Literal["all", "latest", "specific"] = "all"
    latest: int = 1
    specific: tuple[int, ...] = ()

    def select(self, available: list[int]) -> list[int]:
        """The versions to serve, ascending, from the version numbers found on disk."""
        found = sorted(available)
        if self.kind == "latest":
            return found[-self.latest:]
        if self.kind == "specific":
            return [v for v in found if v in self.specific]
        return found

    def describe(self) -> dict[str, Any]:
        if self.kind == "latest":
            return {"latest": self.latest}
        if self.kind == "specific":
            return {"specific": list(self.specific)}
        return {"all": {}}


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyError(f"{what} must be a positive integer, got {value!r}")
    return value


def parse_policy(config: Any) -> VersionPolicy:
    """A ``VersionPolicy`` from a decoded config object (``{}`` or no ``version_policy``: all)."""
    if not isinstance(config, dict):
        raise PolicyError("a model config must be a JSON object")
    spec = config.get("version_policy")
    if spec is None:
        return VersionPolicy()
    if not isinstance(spec, dict) or len(spec) != 1:
        raise PolicyError('version_policy must be one of {"all": {}}, {"latest": N}, {"specific": [...]}')
    ((kind, value),) = spec.items()
    if kind == "all":
        return VersionPolicy("all")
    if kind == "latest":
        n = value.get("num_versions") if isinstance(value, dict) else value
        return VersionPolicy("latest", latest=_positive_int(n, "version_policy.latest"))
    if kind == "specific":
        versions = value.get("versions") if isinstance(value, dict) else value
        if not isinstance(versions, list) or not versions:
            raise PolicyError("version_policy.specific must be a non-empty list of version numbers")
        chosen = tuple(_positive_int(v, "a specific version") for v in versions)
        return VersionPolicy("specific", specific=chosen)
    raise PolicyError(f"unknown version_policy {kind!r}: use all, latest or specific")


def read_config(model_dir: Path, override: str | dict[str, Any] | None = None) -> dict[str, Any]:
    """The model's config: ``override`` (a load request's config, JSON text or object) else config.json."""
    if override is not None:
        try:
            config = json.loads(override) if isinstance(override, str) else override
        except json.JSONDecodeError as exc:
            raise PolicyError(f"the config override is not valid JSON: {exc}") from None
    else:
        path = model_dir / CONFIG_FILE
        if not path.is_file():
            return {}
        try:
            config = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise PolicyError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise PolicyError("a model config must be a JSON object")
    return config


@dataclass(frozen=True)
class BatchingConfig:
    max_batch_size: int = 64
    max_queue_delay_microseconds: int = 0


def parse_batching(config: dict[str, Any]) -> BatchingConfig | None:
    """The ``dynamic_batching`` section of a model config, or None (off; see ``runtime.Batched``)."""
    spec = config.get("dynamic_batching")
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise PolicyError("dynamic_batching must be an object")
    size = spec.get("max_batch_size", 64)
    delay = spec.get("max_queue_delay_microseconds", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise PolicyError("dynamic_batching.max_batch_size must be a positive integer")
    if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= 1_000_000:
        raise PolicyError("dynamic_batching.max_queue_delay_microseconds must be an integer in [0, 1e6]")
    return BatchingConfig(size, delay)
