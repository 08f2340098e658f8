"""service/validation.py: the edge rules, case by case (the HTTP side is tests/api/test_input_bounds.py)."""

from __future__ import annotations

from typing import Any

import pytest

from service.errors import InvalidInput, PayloadTooLarge
from service.validation import INT32_MAX, check_alias, check_name, check_tags, is_number, parse_int


@pytest.mark.parametrize("value, expected", [("0", 0), ("7", 7), (7, 7), (str(INT32_MAX), INT32_MAX)])
def test_parse_int_accepts_ascii_digits_in_range(value: Any, expected: int) -> None:
    assert parse_int(value, "version") == expected


@pytest.mark.parametrize("value, fragment", [
    ("²", "ASCII digits"), ("١", "ASCII digits"), ("٣٤", "ASCII digits"), ("-1", "ASCII digits"),
    ("1e3", "ASCII digits"), (" 1", "ASCII digits"), ("", "ASCII digits"), ("9" * 5000, "ASCII digits"),
    (str(INT32_MAX + 1), "between 0 and 2147483647"), (10**30, "between 0 and 2147483647"),
    (True, "not a boolean"), (1.5, "must be an integer"), (None, "must be an integer"),
])
def test_parse_int_refuses_what_int_would_misread(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        parse_int(value, "version")


def test_parse_int_bounds_are_inclusive() -> None:
    assert parse_int("1", "v", low=1, high=3) == 1 and parse_int("3", "v", low=1, high=3) == 3
    for bad in ("0", "4"):
        with pytest.raises(InvalidInput, match="between 1 and 3"):
            parse_int(bad, "v", low=1, high=3)


def test_is_number_is_ascii_only() -> None:
    assert is_number("12") and not is_number("²") and not is_number("١") and not is_number("") \
        and not is_number("1a")


@pytest.mark.parametrize("name", ["digits", "a", "Model_2.v-1", "x" * 128])
def test_safe_names_pass(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "-x", "a/b", "a b", "é", "x" * 129, "x" * 300,
                                  "a\x00b", "name\n"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="1-128 characters"):
        check_name(name)


def test_aliases_are_at_most_64_characters_and_not_numbers() -> None:
    assert check_alias("production") == "production" and check_alias("a" * 64) == "a" * 64
    with pytest.raises(InvalidInput, match="1-64 characters"):
        check_alias("a" * 65)
    with pytest.raises(InvalidInput, match="cannot be a number"):
        check_alias("12")
    with pytest.raises(InvalidInput, match="1-64 characters"):
        check_alias("²")


def _nested(depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        out = {"k": out}
    return out


def test_tags_within_bounds_pass_unchanged() -> None:
    tags = {"tenant": "a", "ab": {"arm": "b", "list": [1, 2, {"x": 1}]}}
    assert check_tags(tags) is tags and check_tags(None) is None
    assert check_tags(_nested(4)) is not None


@pytest.mark.parametrize("tags, error, fragment", [
    ([1, 2], InvalidInput, "must be a JSON object"),
    ("text", InvalidInput, "must be a JSON object"),
    (_nested(5), InvalidInput, "deeper than 4"),
    (_nested(5000), InvalidInput, "deeper than 4"),  # iterative walk: no RecursionError
    ({f"k{i}": i for i in range(65)}, InvalidInput, "more than 64 keys"),
    ({"blob": "x" * 100_000}, PayloadTooLarge, "limit is 4096"),
    ({"big": 2**70}, InvalidInput, "64 bits"),
])
def test_tags_beyond_bounds_are_refused(tags: Any, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        check_tags(tags)
