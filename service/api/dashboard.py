"""The built-in dashboard: one HTML page plus its vendored assets, all served from the package (no CDN).

The page reads only the public JSON endpoints (``/v1/models``, ``…/calibration``, ``…/calibrators``), so
whatever it shows, a client can fetch too. uPlot (MIT, npm ``uplot``) draws the charts.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(tags=["dashboard"])

# The only files served besides the page: a fixed table, so no request path ever reaches the file system.
ASSETS = {
    "uPlot.iife.min.js": "text/javascript",
    "uPlot.min.css": "text/css",
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "LICENSE.uPlot": "text/plain",
}


def _static(name: str) -> bytes:
    return files("service.api").joinpath("static", name).read_bytes()


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard() -> HTMLResponse:
    """Calibration dashboard: reliability diagram with counts and intervals, ECE over time, drift, history."""
    return HTMLResponse(_static("dashboard.html"))


def _asset_route(name: str, media_type: str) -> None:
    async def asset() -> Response:
        return Response(_static(name), media_type=media_type, headers={"Cache-Control": "public, max-age=300"})

    asset.__doc__ = f"Dashboard asset {name} (vendored in the package)."
    router.add_api_route(f"/dashboard/{name}", asset, methods=["GET"], include_in_schema=False,
                         name=f"dashboard_{name}")


for _name, _media_type in ASSETS.items():
    _asset_route(_name, _media_type)
