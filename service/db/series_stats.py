"""Several consecutive windows of calibration state summed in SQL, one round trip per table (the time series
of the calibration endpoint and the drift reference windows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, literal_column, select
from sqlalchemy.orm import Session

from service.db.stats import Scope, bound_where, serial_plan
from service.db.tables import CalibrationBin, PredictionConfidenceBin, PredictionCount


def window_index(column: Any, edges: list[datetime]) -> Any:
    """SQL expression: the i with edges[i] ≤ column < edges[i + 1], as a balanced CASE tree (depth
    log2(#windows); portable across SQLite and PostgreSQL, unlike epoch arithmetic on timestamps)."""

    def tree(lo: int, hi: int) -> Any:  # windows lo..hi-1
        if hi - lo == 1:
            return literal_column(str(lo))
        mid = (lo + hi) // 2
        return case((column < edges[mid], tree(lo, mid)), else_=tree(mid, hi))

    return tree(0, len(edges) - 1)


@dataclass
class WindowsRows:
    """Several consecutive windows summed in SQL in one round trip per table (time series, references)."""

    fine: list[tuple[int, int, float, float, float]]  # window, bin, count, Σconfidence, Σcorrect
    predicted: list[tuple[int, float]]  # window, count
    confidence: list[tuple[int, int, float, float]]  # window, bin, count, Σconfidence (all predictions)


def read_windows(session: Session, scope: Scope, edges: list[datetime]) -> WindowsRows:
    """Sum buckets into the windows [edges[i], edges[i+1]); cost: buckets × bins, scanned once."""
    fb, pc, cf = CalibrationBin, PredictionCount, PredictionConfidenceBin
    start, end = edges[0], edges[-1]

    def grouped(table: Any, *cols: Any, by_bin: bool = True) -> list[Any]:
        # window index computed in a subquery: PostgreSQL would not match a GROUP BY expression whose
        # bound parameters differ from the SELECT's, so the outer query groups by the plain column
        inner = select(window_index(table.bucket, edges).label("win"), *([table.bin] if by_bin else []),
                       *cols).where(*bound_where(table, scope.calibrator_version is None)).subquery()
        keys = [inner.c.win, inner.c.bin] if by_bin else [inner.c.win]
        sums = [func.sum(inner.c[c.key]) for c in cols]
        return [tuple(r) for r in session.execute(select(*keys, *sums).group_by(*keys), scope.params(start, end))]

    serial_plan(session)
    return WindowsRows(
        grouped(fb, fb.count, fb.confidence_sum, fb.correct_sum),
        grouped(pc, pc.count, by_bin=False),
        grouped(cf, cf.count, cf.confidence_sum),
    )
