"""Dependencies, written once as ``Annotated`` aliases (the full-stack-fastapi-template way)."""

from __future__ import annotations

import hashlib
import hmac
import logging
from typing import Annotated

from fastapi import Depends, Request

from service.db.probe import DatabaseProbe
from service.errors import AdminTokenMissing, AdminTokenRejected
from service.handlers.services import Services

log = logging.getLogger(__name__)


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    """A coroutine on purpose: FastAPI runs a plain-``def`` dependency in the thread pool, a thread hop
    (~100 µs and GIL hand-offs) on every request for a dictionary lookup."""
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


def database_probe(request: Request) -> DatabaseProbe:
    """The readiness probe of the database (built in the lifespan)."""
    probe: DatabaseProbe = request.app.state.database_probe
    return probe


async def require_admin(request: Request, services: ServicesDep) -> str:
    """Bearer-token check for admin routes; returns the actor name used in the audit log.

    Tokens are compared as SHA-256 digests with ``hmac.compare_digest`` against every configured token
    (no early exit), so response time does not depend on how much of a token a caller guessed."""
    tokens = services.settings.all_admin_tokens()
    if not tokens:
        services.metrics.admin_auth_failures.labels("disabled").inc()
        raise AdminTokenRejected("admin endpoints are disabled: no admin token is configured (CALIBSERVE_ADMIN_TOKEN)")
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        services.metrics.admin_auth_failures.labels("missing").inc()
        log.warning("admin request without a bearer token: %s %s", request.method, request.url.path)
        raise AdminTokenMissing("admin endpoints need an 'Authorization: Bearer <token>' header")
    given_digest = hashlib.sha256(given.strip().encode()).digest()
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(given_digest, hashlib.sha256(token.encode()).digest())
    if not matched:
        services.metrics.admin_auth_failures.labels("invalid").inc()
        log.warning("admin request with an invalid token: %s %s", request.method, request.url.path)  # never the token
        raise AdminTokenRejected("the admin token is not valid")
    return "admin:" + hashlib.sha256(given.strip().encode()).hexdigest()[:8]


AdminDep = Annotated[str, Depends(require_admin)]
