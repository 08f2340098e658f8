"""Fixtures for the benchmarks' own parts: the bench model, built once per session."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from bench.serve.model import BenchModel, build


@pytest.fixture(scope="session")
def bench_model(tmp_path_factory: pytest.TempPathFactory) -> BenchModel:
    """The LogisticRegression every serving target serves (joblib + ONNX + calibserve card)."""
    return build(tmp_path_factory.mktemp("bench-model"))


@pytest.fixture
def baseline_module(bench_model: BenchModel, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
                    ) -> ModuleType:
    """``bench.baseline_app`` or ``bench.baseline_asgi`` (the param) imported with BASELINE_MODEL set:
    the modules load their session at import, as uvicorn imports them."""
    monkeypatch.setenv("BASELINE_MODEL", str(Path(bench_model.onnx)))
    module = importlib.import_module(request.param)
    return importlib.reload(module)
