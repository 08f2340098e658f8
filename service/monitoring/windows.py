"""Window parsing: ``?window=1h`` (ending now) or explicit ``start``/``end`` (ISO 8601), plus series steps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from service.errors import InvalidInput

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
MAX_FUTURE_SKEW = timedelta(seconds=5)


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"'{text}' is not a duration like 30s, 15m, 1h, 7d or 2w")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def parse_instant(text: str, name: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name}='{text}' is not an ISO 8601 time") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def resolve_window(
    window: str | None, start: str | None, end: str | None, *, default: str, now: datetime | None = None
) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    stop = parse_instant(end, "end") if end else now
    if stop > now + MAX_FUTURE_SKEW:
        raise InvalidInput("the window reaches into the future: end must not be later than now")
    begin = parse_instant(start, "start") if start else stop - parse_duration(window or default)
    if begin >= stop:
        raise InvalidInput("the window is empty: start must be earlier than end")
    return begin, stop


def split_window(start: datetime, end: datetime, step: timedelta, max_points: int = 500) -> list[datetime]:
    if (end - start) / step > max_points:
        raise InvalidInput(f"too many points: the window / step must give at most {max_points}")
    edges = [start]
    while edges[-1] + step < end:
        edges.append(edges[-1] + step)
    return [*edges, end]


def parse_bins(value: int | None, default: int, fine_bins: int = 300) -> int:
    """Equal-width bin count for a query: must divide the 300 stored fine bins (then ECE is exact)."""
    n_bins = default if value is None else value
    if n_bins <= 0 or fine_bins % n_bins:
        raise InvalidInput(f"bins must divide {fine_bins} (e.g. 5, 10, 15, 20, 30, 50, 100); got {n_bins}")
    return n_bins


def parse_choice(value: str | None, name: str, choices: tuple[str, ...]) -> str:
    chosen = choices[0] if value in (None, "") else value
    if chosen not in choices:
        raise InvalidInput(f"{name} must be one of {', '.join(choices)}; got '{value}'")
    return str(chosen)


def parse_step(text: str, bucket_seconds: int) -> timedelta:
    step = parse_duration(text)
    if step.total_seconds() < bucket_seconds:
        raise InvalidInput(f"step must be at least the bucket width ({bucket_seconds}s): state is kept per bucket")
    return step
