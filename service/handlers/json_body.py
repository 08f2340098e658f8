"""Decoding a request body as JSON, with one sentence per way it can be wrong."""

from __future__ import annotations

from typing import Any

import orjson

from service.errors import InvalidInput


def decode_json(body: bytes) -> Any:
    if not body:
        raise InvalidInput("the request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the request body is not valid JSON: {exc}") from None


def json_object(body: bytes) -> dict[str, Any]:
    data = decode_json(body)
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object")
    return data
