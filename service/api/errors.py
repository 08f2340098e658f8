"""One place that renders errors as ``{"error": "..."}`` with the domain error's status (counting them is
the core objects' job: the predictor counts every predict/infer outcome once).

A true bug is rendered by ``CatchAll``, a pure-ASGI middleware inside Starlette's ``ServerErrorMiddleware``:
that one always re-raises after sending its 500, and uvicorn then closes the keep-alive connection, so
the client's next request on it fails with a reset. ``CatchAll`` answers the 500 itself and returns
normally, and the connection stays usable.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.http import JSONBytes
from service.db.engine import database_unreachable
from service.errors import DatabaseUnavailable, ServiceError

log = logging.getLogger(__name__)


def error_response(exc: ServiceError) -> Response:
    return JSONBytes({"error": exc.message}, status_code=exc.status_code, headers=exc.headers)


def internal_error(exc: BaseException) -> Response:
    return JSONBytes({"error": f"internal error ({type(exc).__name__})"}, status_code=500)


class CatchAll:
    """Render an unhandled exception as a JSON 500 and keep the connection (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:  # half a response is on the wire: only closing the connection is honest
                raise
            await internal_error(exc)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONBytes({"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> Response:
        return JSONBytes({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(SQLAlchemyError)
    async def database_error(request: Request, exc: SQLAlchemyError) -> Response:
        if not database_unreachable(exc):
            log.exception("database error", exc_info=exc)
            return internal_error(exc)
        log.warning("database unreachable: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        retry_after = request.app.state.services.settings.database_retry_after_seconds
        return error_response(DatabaseUnavailable(
            f"the database is unreachable ({type(exc).__name__}); nothing was stored, retry later", retry_after))

    app.add_middleware(CatchAll)
