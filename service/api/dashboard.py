"""A dependency-free HTML dashboard: reliability diagram and ECE over time, from the JSON API."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["dashboard"])


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard() -> HTMLResponse:
    """Calibration dashboard (reliability diagram, ECE and coverage over time, drift state)."""
    return HTMLResponse(files("service.api").joinpath("static/dashboard.html").read_text())
