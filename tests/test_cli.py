"""The CLI calls the same handlers as the HTTP API (``calibserve refit``, ``calibserve db``)."""

from __future__ import annotations

import json

import pytest

from service.cli import main
from tests.factories import digits, ids_of, post_labels, predict


def test_refit_cli_dry_run_and_activation(client, settings, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    x, y = digits()
    post_labels(client, ids_of(predict(client, x[:300])), [int(v) for v in y[:300]])
    monkeypatch.setenv("CALIBSERVE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CALIBSERVE_MODEL_REPOSITORY", str(settings.model_repository))
    assert main(["refit", "digits", "1", "--dry-run", "--activate", "always"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dry_run"] and out["calibrator_version"] is None and out["n_labels"] == 300
    assert main(["refit", "digits", "1", "--activate", "always"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["activated"] and out["calibrator_version"] == 2
    audit = client.get("/v1/admin/audit", headers={"Authorization": "Bearer test-admin-token"}).json()["entries"]
    assert audit[0]["actor"].startswith("cli:") and audit[0]["action"] == "refit"


def test_db_upgrade_is_idempotent(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALIBSERVE_DATABASE_URL", settings.database_url)
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "upgrade"]) == 0


def test_serve_bounds_connections() -> None:
    """``calibserve serve`` runs uvicorn with the bounded protocol (head deadline, JSON 400s) and keep-alive."""
    from service.api.protocol import BoundedHttpToolsProtocol
    from service.cli import _uvicorn_options
    from service.settings import Settings

    options = _uvicorn_options(Settings(header_timeout_seconds=3.0, keep_alive_seconds=7.0))
    protocol = options["http"]
    assert protocol.func is BoundedHttpToolsProtocol  # type: ignore[attr-defined]
    assert protocol.keywords == {"header_timeout": 3.0}  # type: ignore[attr-defined]
    assert options["timeout_keep_alive"] == 7.0
