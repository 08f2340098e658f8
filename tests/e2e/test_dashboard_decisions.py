"""The dashboard shows set coverage and realised vs expected cost: a real server, real traffic and labels, the
page rendered by Debian's headless Chromium (its JavaScript fetches the window JSON), on both databases."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import running_server
from tests.factories import digits

pytestmark = pytest.mark.e2e
TOKEN = "e2e-admin-token"


def rendered_dom(url: str) -> str:
    exe = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(exe).exists():
        pytest.fail("headless Chromium is required: run scripts/install-system-packages.sh (Debian 'chromium')")
    out = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000",
                          "--dump-dom", url], capture_output=True, text=True, timeout=90, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_dashboard_shows_coverage_and_cost(database_url: str, model_repository: Path) -> None:
    x, y = digits()
    with running_server(database_url, model_repository, ADMIN_TOKEN=TOKEN) as base:
        costs = [[0.0 if a == k else 1.0 for k in range(10)] for a in range(10)] + [[0.2] * 10]
        r = httpx.put(f"{base}/v1/admin/models/digits/cost-matrix", json={"matrix": costs},
                      headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 201, r.text
        body = httpx.post(f"{base}/v1/models/digits/predict", json={
            "instances": x[:200].tolist(), "coverage": 0.9, "decision": True, "min_confidence": 0.5}).json()
        items = [{"prediction_id": p["prediction_id"], "label": int(v)}
                 for p, v in zip(body["predictions"], y[:200], strict=True)]
        assert httpx.post(f"{base}/v1/feedback", json={"items": items}).status_code == 200
        window = httpx.get(f"{base}/v1/models/digits/versions/1/calibration?window=1h").json()["decisions"]
        realised = window["conformal"][0]["realised_coverage"]
        for _ in range(3):  # the page fills itself from fetches; on a loaded machine one budget may not do
            text = re.sub(r"<[^>]+>", " ", rendered_dom(f"{base}/dashboard"))
            if "set coverage @ 0.9 (conformal v1)" in text:
                break
    assert "set coverage @ 0.9 (conformal v1)" in text
    assert f"{realised:.4f}" in text and "n=200" in text
    assert "decisions (cost matrix v1, min conf 0.5)" in text and "realised cost" in text and "AUARC" in text
