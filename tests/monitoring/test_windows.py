"""Window, step, bins and choice parsing: every bad value is an InvalidInput with a clear sentence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.errors import InvalidInput
from service.monitoring.windows import (
    parse_bins,
    parse_choice,
    parse_duration,
    parse_step,
    resolve_window,
    split_window,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("1h", 3600), (" 7d ", 604800),
                                               ("2w", 1209600)])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "h", "1", "0m", "-5m", "1.5h", "1y", "1hour", "1h30m", "١h", "²d",
                                  "99999999999999999999w"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(InvalidInput, match="is not a duration"):
        parse_duration(text)


def test_resolve_window_defaults_to_a_duration_ending_now() -> None:
    assert resolve_window(None, None, None, default="1h", now=NOW) == (NOW - timedelta(hours=1), NOW)
    assert resolve_window("2h", None, "2026-11-22T11:00:00Z", default="1h", now=NOW) == (
        datetime(2026, 11, 22, 9, 0, tzinfo=UTC), datetime(2026, 11, 22, 11, 0, tzinfo=UTC))
    naive = resolve_window(None, "2026-11-22T10:00:00", "2026-11-22T11:00:00", default="1h", now=NOW)
    assert naive[0].tzinfo is UTC  # naive instants are UTC


@pytest.mark.parametrize(("window", "start", "end", "message"), [
    (None, None, "2026-11-22T12:01:00Z", "into the future"),
    (None, "2026-11-22T11:00:00Z", "2026-11-22T11:00:00Z", "empty"),
    (None, "2026-11-22T11:30:00Z", "2026-11-22T11:00:00Z", "empty"),
    (None, "yesterday", None, "not an ISO 8601"),
    ("soon", None, None, "not a duration"),
    ("367d", None, None, "longer than the maximum of 366 days"),
    ("53w", None, None, "longer than the maximum of 366 days"),
    (None, "0001-01-01T00:00:00", None, "earlier than 2000-01-01"),
    (None, "1999-12-31T23:59:59Z", None, "earlier than 2000-01-01"),
    (None, "2025-01-01T00:00:00Z", None, "window is longer than the maximum"),
    (None, None, "0001-01-01T00:00:00+14:00", "not an ISO 8601"),  # astimezone overflows
    (None, "2" * 300, None, "too long"),
])
def test_bad_windows(window: str | None, start: str | None, end: str | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        resolve_window(window, start, end, default="1h", now=NOW)


def test_split_window_and_its_point_limit() -> None:
    edges = split_window(NOW - timedelta(minutes=50), NOW, timedelta(minutes=20))
    assert [e.minute for e in edges] == [10, 30, 50, 0]
    with pytest.raises(InvalidInput, match="too many points"):
        split_window(NOW - timedelta(days=7), NOW, timedelta(minutes=1))


def test_bins_must_divide_300() -> None:
    assert parse_bins(None, 15) == 15 and parse_bins(20, 15) == 20
    for bad in (0, -5, 7, 16, 301):
        with pytest.raises(InvalidInput, match="must divide 300"):
            parse_bins(bad, 15)


def test_step_and_choices() -> None:
    assert parse_step("5m", 60) == timedelta(minutes=5)
    with pytest.raises(InvalidInput, match="at least the bucket width"):
        parse_step("30s", 60)
    assert parse_choice(None, "rule", ("ci", "sigma")) == "ci"
    with pytest.raises(InvalidInput, match="rule must be one of ci, sigma"):
        parse_choice("nannyml", "rule", ("ci", "sigma"))
