"""The OpenAPI document is the contract: a bounded schemathesis run against a live uvicorn (SQLite), with and
without the admin token — no 5xx, every status documented, every body and content type as documented.
The predict/infer operations of the ASGI fast path are in the document (api/predict_docs.py) and in the run.
The long run is ``python -m bench schemathesis_run``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.schemathesis_run import run_contract, seed_traffic
from service.app import create_app
from service.db.migrate import upgrade
from service.settings import Settings
from tests.api.live import live_server
from tests.conftest import ADMIN_TOKEN


@pytest.fixture(scope="module")
def base_url(trained_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("schemathesis")
    shutil.copytree(trained_repository, work / "models")
    url = f"sqlite:///{work / 'calibserve.db'}"
    upgrade(url)
    app = create_app(Settings(database_url=url, model_repository=work / "models", admin_token=ADMIN_TOKEN,
                              log_flush_seconds=0.01))
    with live_server(app) as port:
        base = f"http://127.0.0.1:{port}"
        seed_traffic(base)
        yield base


@pytest.mark.parametrize("token", [None, ADMIN_TOKEN], ids=["anonymous", "admin"])
def test_every_operation_keeps_its_contract(base_url: str, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    results = run_contract(base_url, headers=headers, examples=12)
    assert len(results) >= 15 and all(r.requests > 0 for r in results)
    assert [(r.operation, r.failure) for r in results if r.failure] == []


def test_the_document_has_no_fastapi_422_and_documents_errors(base_url: str) -> None:
    doc = httpx.get(f"{base_url}/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            fastapi_422 = str(responses.get("422", {}))
            assert "HTTPValidationError" not in fastapi_422, (method, path)
            assert {"429", "500"} <= set(responses), (method, path)
            ok = responses.get("200") or responses.get("201")
            if path not in ("/dashboard",) and not path.endswith(("/load", "/unload")) and not path.endswith(
                    ("/predict", "/infer")):
                assert ok["content"]["application/json"]["schema"], (method, path)
    refit = doc["paths"]["/v1/admin/models/{model}/versions/{version}/calibrators"]["post"]["responses"]
    assert refit["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
