"""GET /dashboard and its assets come from the installed package (no CDN), uPlot's licence beside it."""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any

from service.api.dashboard import ASSETS


def test_page_and_assets_are_served_from_the_package(client: Any) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # every script and stylesheet is local: nothing is fetched from another host
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert refs and all(r.startswith("/dashboard/") or r.startswith("data:") for r in refs), refs
    for ref in refs:
        if ref.startswith("/dashboard/"):
            asset = client.get(ref)
            assert asset.status_code == 200, ref
            assert asset.headers["content-type"].split(";")[0] == ASSETS[ref.removeprefix("/dashboard/")]
    assert client.get("/dashboard/../settings.py").status_code == 404
    assert client.get("/dashboard/app.py").status_code == 404


def test_vendored_library_carries_its_licence() -> None:
    static = files("service.api").joinpath("static")
    licence = static.joinpath("LICENSE.uPlot").read_text()
    assert "MIT License" in licence and "Leon Sorokin" in licence
    assert "uPlot" in static.joinpath("uPlot.iife.min.js").read_text()[:2000]
    assert re.search(r"https?://", static.joinpath("dashboard.js").read_text()) is None
