"""One place that renders errors as ``{"error": "..."}`` with the domain error's status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.http import JSONBytes
from service.errors import ServiceError

log = logging.getLogger(__name__)


def _count(request: Request, status: int) -> None:
    """Failed predict/infer requests in ``calibserve_requests_total`` (successes are counted by the routes)."""
    services = getattr(request.app.state, "services", None)
    path = request.url.path
    endpoint = "v1_predict" if path.endswith("/predict") else "v2_infer" if path.endswith("/infer") else None
    if services is None or endpoint is None:
        return
    params = request.path_params
    services.metrics.requests.labels(endpoint, params.get("model", ""), params.get("ref", params.get("version", "")),
                                     str(status)).inc()


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        _count(request, exc.status_code)
        return JSONBytes({"error": exc.message}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        _count(request, 400)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONBytes({"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return JSONBytes({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error")
        _count(request, 500)
        return JSONBytes({"error": f"internal error ({type(exc).__name__})"}, status_code=500)
