"""Window metrics per slice (``?slice=key:value`` or ``?by=key`` on the calibration endpoint): for each
slice, the labelled count, ECE with the same bootstrap CI as the whole window, MCE, accuracy, mean
confidence and the reliability diagram, from the per-slice fine bins (``service.db.slices``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service.calibration import streaming
from service.db.slices import admitted_values, read_slice_window
from service.errors import InvalidInput
from service.monitoring import drift
from service.monitoring.report import WindowQuery, ece_interval, num, reliability_rows
from service.monitoring.slices import MAX_VALUE_CHARS, OTHER


def parse_slice(slice_: str | None, by: str | None, keys: tuple[str, ...]) -> tuple[str, str | None] | None:
    """(key, value) for ``slice=key:value``, (key, None) for ``by=key``, None for neither."""
    if slice_ is not None and by is not None:
        raise InvalidInput("give either slice=key:value or by=key, not both")
    if slice_ is None and by is None:
        return None
    if slice_ is not None:
        key, sep, value = slice_.partition(":")
        if not sep or not value:
            raise InvalidInput("slice must be key:value, e.g. slice=country:fr")
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidInput(f"a slice value is at most {MAX_VALUE_CHARS} characters")
    else:
        key, value = str(by), None
    if key not in keys:
        configured = ", ".join(keys) if keys else "none are configured (CALIBSERVE_SLICE_KEYS)"
        raise InvalidInput(f"'{key[:64]}' is not a configured slice key; configured: {configured}")
    return key, value


def slice_entry(key: str, value: str, fine: streaming.BinStats, n_bins: int, n_boot: int) -> dict[str, Any]:
    n = fine.n
    out: dict[str, Any] = {"slice_key": key, "slice_value": value, "labelled": int(n)}
    if n == 0:
        out.update(ece=None, ece_ci=None, mce=None, accuracy=None, mean_confidence=None,
                   confidence_accuracy_gap=None, reliability=[])
        return out
    ece, lo, hi = ece_interval(fine, n_bins, n_boot)
    out.update(ece=num(ece), ece_ci=[num(lo), num(hi)], ece_ci_level=1 - drift.DRIFT_ALPHA, mce=num(fine.mce(n_bins)),
               accuracy=num(fine.accuracy), mean_confidence=num(fine.mean_confidence),
               confidence_accuracy_gap=num(fine.mean_confidence - fine.accuracy),
               reliability=reliability_rows(fine.reliability_bins(n_bins)))
    return out


def slice_report(session: Session, q: WindowQuery, start: datetime, end: datetime, key: str, value: str | None,
                 n_boot: int = 200) -> dict[str, Any]:
    """One slice (``value``) or every admitted value of ``key`` plus ``other``, in slot order (bounded by
    ``slice_max_values`` + 1 entries)."""
    admitted = admitted_values(session=session, model=q.scope.model, slice_key=key)
    if value is not None and value != OTHER and value not in admitted:
        raise InvalidInput(f"'{value[:64]}' is not an admitted value of slice key '{key}': its rows are counted "
                           f"under '{OTHER}'")
    values = [value] if value is not None else [*sorted(admitted, key=admitted.__getitem__), OTHER]
    rows = read_slice_window(session, scope=q.scope, slice_key=key, slice_value=value, start=start, end=end)
    entries = []
    for v in values:
        fine = streaming.BinStats()
        for b, n, conf, correct in rows.bins.get(v, []):
            fine.count[b] += n
            fine.confidence_sum[b] += conf
            fine.correct_sum[b] += correct
        entries.append(slice_entry(key, v, fine, q.n_bins, n_boot))
    return {"slice_key": key, "mode": "slice" if value is not None else "by", "values": entries}
