"""Window parsing: ``?window=1h`` (ending now) or explicit ``start``/``end`` (ISO 8601), plus series steps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from service.errors import InvalidInput
from service.validation import parse_int

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# ASCII digits only (``\d`` also matches "١"), at most 10 of them: int() stays cheap and exact
_DURATION = re.compile(r"^\s*([0-9]{1,10})\s*([smhdw])\s*$", re.ASCII)
MAX_FUTURE_SKEW = timedelta(seconds=5)
# Bounds keep every derived instant (the window, its step edges and up to 50 reference windows before it)
# far inside datetime's range: "0001-01-01" minus a window would raise OverflowError.
MAX_DURATION = timedelta(days=366)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def parse_duration(text: str, name: str = "window") -> timedelta:
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise InvalidInput(f"{name}='{_shown(text)}' is not a duration like 30s, 15m, 1h, 7d or 2w")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_DURATION.total_seconds():
        raise InvalidInput(f"{name}='{_shown(text)}' is longer than the maximum of {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def parse_instant(text: str, name: str) -> datetime:
    if len(text) > 64:
        raise InvalidInput(f"{name} is not an ISO 8601 time (too long)")
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    except (ValueError, OverflowError):  # astimezone overflows at the ends of the range
        raise InvalidInput(f"{name}='{_shown(text)}' is not an ISO 8601 time") from None
    if dt < EARLIEST:
        raise InvalidInput(f"{name}='{_shown(text)}' is earlier than {EARLIEST.date().isoformat()}")
    return dt


def _shown(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


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
    if stop - begin > MAX_DURATION:
        raise InvalidInput(f"the window is longer than the maximum of {MAX_DURATION.days} days")
    return begin, stop


def split_window(start: datetime, end: datetime, step: timedelta, max_points: int = 500) -> list[datetime]:
    if (end - start) / step > max_points:
        raise InvalidInput(f"too many points: the window / step must give at most {max_points}")
    edges = [start]
    while edges[-1] + step < end:
        edges.append(edges[-1] + step)
    return [*edges, end]


def parse_bins(value: int | str | None, default: int, fine_bins: int = 300) -> int:
    """Equal-width bin count for a query: must divide the 300 stored fine bins (then ECE is exact)."""
    n_bins = default if value is None else value if isinstance(value, int) else parse_int(value, "bins")
    if n_bins <= 0 or fine_bins % n_bins:
        raise InvalidInput(f"bins must divide {fine_bins} (e.g. 5, 10, 15, 20, 30, 50, 100); got {n_bins}")
    return n_bins


def parse_choice(value: str | None, name: str, choices: tuple[str, ...]) -> str:
    chosen = choices[0] if value in (None, "") else value
    if chosen not in choices:
        raise InvalidInput(f"{name} must be one of {', '.join(choices)}; got '{value}'")
    return str(chosen)


def parse_step(text: str, bucket_seconds: int) -> timedelta:
    step = parse_duration(text, "step")
    if step.total_seconds() < bucket_seconds:
        raise InvalidInput(f"step must be at least the bucket width ({bucket_seconds}s): state is kept per bucket")
    return step
