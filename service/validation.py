"""Edge validators shared by every transport and the CLI: one rule per kind of client value, one error type.

Integers are ASCII digits within their column's range (``str.isdigit`` accepts "²" and "١", and
``int("١")`` is 1); names match a safe pattern and a length before they reach the file system or the
database; tags are bounded in size, depth and key count. Every failure is an ``InvalidInput`` (400) or a
``PayloadTooLarge`` (413) saying which value was wrong.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from service.errors import InvalidInput, PayloadTooLarge

INT32_MAX = 2**31 - 1  # INTEGER columns on PostgreSQL (version, calibrator_version, bin, label)
_DIGITS = re.compile(r"[0-9]{1,10}", re.ASCII)  # ≤ 10 digits: int() never sees a 4,300-digit string
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # model names: String(128), one path component
ALIAS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"  # aliases: String(64)
_NAME = re.compile(NAME_PATTERN, re.ASCII)
_ALIAS = re.compile(ALIAS_PATTERN, re.ASCII)

MAX_TAG_BYTES = 4096  # serialised; tags are stored with the prediction log
MAX_TAG_KEYS = 64  # keys over the whole object, nested ones included
MAX_TAG_DEPTH = 4  # {"a": {"b": …}} has depth 2


def _shown(value: object, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "…"


def parse_int(value: object, name: str, *, low: int = 0, high: int = INT32_MAX) -> int:
    """An integer given as a JSON int or a string of ASCII digits, within ``[low, high]``."""
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be an integer, not a boolean")
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise InvalidInput(f"{name} must be a whole number written in ASCII digits; got '{_shown(value)}'")
        number = int(value)
    elif isinstance(value, int):
        number = value
    else:
        raise InvalidInput(f"{name} must be an integer")
    if not low <= number <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}; got {_shown(number)}")
    return number


def is_number(text: str) -> bool:
    """Whether a path segment is meant as a number (ASCII digits only): "²" and "١" are not."""
    return text.isascii() and text.isdigit()


def check_name(value: str, what: str = "model name") -> str:
    """A model name safe as one directory name and as a String(128) column."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidInput(f"{what} '{_shown(value)}' must be 1-128 characters of letters, digits, '.', '_' "
                           "or '-', starting with a letter or digit")
    return value


def check_alias(value: str) -> str:
    """An alias: a safe name of at most 64 characters that is not a number (it would shadow a version)."""
    if not isinstance(value, str) or not _ALIAS.fullmatch(value):
        raise InvalidInput(f"alias '{_shown(value)}' must be 1-64 characters of letters, digits, '.', '_' or "
                           "'-', starting with a letter or digit")
    if value.isdigit():
        raise InvalidInput("an alias cannot be a number (it would shadow a version)")
    return value


def check_tags(value: Any, where: str = "tags") -> dict[str, Any] | None:
    """Request tags: a JSON object of at most MAX_TAG_BYTES serialised, MAX_TAG_KEYS keys, MAX_TAG_DEPTH deep."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a JSON object")
    keys = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:  # iterative: a deep object must not exhaust the Python stack
        node, depth = stack.pop()
        if depth > MAX_TAG_DEPTH:
            raise InvalidInput(f"{where} are nested deeper than {MAX_TAG_DEPTH} levels")
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        if isinstance(node, dict):
            keys += len(node)
            if keys > MAX_TAG_KEYS:
                raise InvalidInput(f"{where} have more than {MAX_TAG_KEYS} keys")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    try:
        size = len(orjson.dumps(value))
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits
        raise InvalidInput(f"{where} hold a value that cannot be stored (integers must fit in 64 bits)") from None
    if size > MAX_TAG_BYTES:
        raise PayloadTooLarge(f"{where} take {size} bytes serialised; the limit is {MAX_TAG_BYTES}")
    return value
