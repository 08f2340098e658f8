"""The OpenAPI document as the contract: each route lists the error statuses it returns (``responses``
below) with the ``{"error"}`` schema; every operation also documents 500 (a true bug) and 429 (the
per-client cap), and FastAPI's default 422, which this service never sends (a bad parameter is a 400), is
removed."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from service.api.schemas import ErrorBody, ModelsList

DESCRIPTIONS = {
    400: "Invalid input: the error says which value and why.",
    401: "No `Authorization: Bearer` header (admin routes).",
    403: "The admin token is not valid, or admin routes are disabled.",
    404: "No such model, version, alias or calibrator.",
    408: "The request body did not arrive within the body timeout.",
    409: "The action conflicts with the current state.",
    413: "The body, a batch or the tags are larger than the documented limits.",
    422: "Not enough labelled data for the re-fit.",
    429: "This client already has the configured number of requests in flight (Retry-After).",
    500: "A bug; the connection stays usable.",
    503: "Not available now: the database is unreachable or the model has no serving version (Retry-After "
         "when it is the database).",
}
ALWAYS = (429, 500)
# routes in files this layer leaves alone (the hot-path module api/native.py): their 200 schema is set here
RESPONSE_MODELS: dict[tuple[str, str], type[BaseModel]] = {("/v1/models", "get"): ModelsList}
BODY = (400, 408, 413)  # every route that reads a body


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for these error statuses, each with the ``{"error"}`` schema."""
    return {code: {"model": ErrorBody, "description": DESCRIPTIONS[code]} for code in codes}


def json_body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body raw (tritonclient sends no Content-Type)."""
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


def contract(document: dict[str, Any]) -> dict[str, Any]:
    """Drop FastAPI's validation 422 and its schemas; add the statuses every operation can return."""
    error_ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            fastapi_422 = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if fastapi_422.get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
            for code in ALWAYS:
                responses.setdefault(str(code), {"description": DESCRIPTIONS[code], **error_ref})
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for (path, method), model in RESPONSE_MODELS.items():
        operation = document.get("paths", {}).get(path, {}).get(method)
        if operation is not None:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
            operation["responses"]["200"]["content"] = {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.setdefault("ErrorBody", ErrorBody.model_json_schema())
    return document


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = contract(get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
