"""O(bins) state of one window, assembled from summed database rows (``service.db.stats``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session

from service.calibration import streaming
from service.calibration.classwise_stats import ClasswiseStats
from service.db.series_stats import WindowsRows, read_windows
from service.db.stats import Scope, WindowRows
from service.db.window_sums import rows_from_sums, window_sums

FINE = streaming.FINE_BINS
ROLLED_WINDOW = timedelta(hours=1)  # windows at least this long are read from the roll-ups (``read_states``)
STATE_TAGS = (0, 3, 4)  # labelled fine bins, predictions served, their confidence histogram


@dataclass
class WindowState:
    """Labelled statistics (``fine``), predictions served, and the confidence histogram of ALL of them."""

    start: datetime
    end: datetime
    fine: streaming.BinStats
    predicted: float
    confidence_count: np.ndarray  # (300,)
    confidence_sum: np.ndarray  # (300,)

    @property
    def expected_accuracy(self) -> float:
        """Mean calibrated confidence of every prediction served: the accuracy the model promises."""
        n = float(self.confidence_count.sum())
        return float(self.confidence_sum.sum()) / n if n > 0 else float("nan")


def fine_from_rows(rows: WindowRows) -> streaming.BinStats:
    fine = streaming.BinStats(nll_sum=rows.nll_sum, brier_sum=rows.brier_sum)
    for b, n, conf, correct in rows.fine:
        fine.count[b] += n
        fine.confidence_sum[b] += conf
        fine.correct_sum[b] += correct
    return fine


def classwise_from_rows(rows: WindowRows, n_classes: int, n_bins: int) -> ClasswiseStats:
    """The (K, M) class-wise table; stored with the service's ``ece_bins``, so M must match it."""
    k = max([n_classes, *[c + 1 for c, *_ in rows.classes]])
    cls = ClasswiseStats.empty(k, n_bins)
    for c, b, n, prob, label in rows.classes:
        cls.count[c, b] += n
        cls.prob_sum[c, b] += prob
        cls.label_sum[c, b] += label
    return cls


def state_from_rows(rows: WindowRows, start: datetime, end: datetime) -> WindowState:
    count, total = np.zeros(FINE), np.zeros(FINE)
    for b, n, s in rows.confidence:
        count[b] += n
        total[b] += s
    return WindowState(start, end, fine_from_rows(rows), rows.predicted, count, total)


def split_states(rows: WindowsRows, edges: list[datetime]) -> list[WindowState]:
    """One ``WindowState`` per window [edges[i], edges[i+1]) from rows keyed by window index."""
    w = len(edges) - 1
    fine = np.zeros((3, w, FINE))
    for i, b, n, s, a in rows.fine:
        fine[:, i, b] += (n, s, a)
    conf = np.zeros((2, w, FINE))
    for i, b, n, s in rows.confidence:
        conf[:, i, b] += (n, s)
    predicted = np.zeros(w)
    for i, n in rows.predicted:
        predicted[i] += n
    return [
        WindowState(edges[i], edges[i + 1], streaming.BinStats(fine[0, i], fine[1, i], fine[2, i]),
                    float(predicted[i]), conf[0, i], conf[1, i])
        for i in range(w)
    ]


def read_states(session: Session, scope: Scope, edges: list[datetime]) -> list[WindowState]:
    """Consecutive windows: windows of an hour or more one by one from the roll-ups (O(log) rows each, the
    stable part memoised), shorter ones in one pass over the fine buckets (one round trip per table)."""
    if len(edges) < 2:
        return []
    if (edges[-1] - edges[0]) / (len(edges) - 1) < ROLLED_WINDOW:
        return split_states(read_windows(session, scope, edges), edges)
    return [state_from_rows(rows_from_sums(window_sums(session, scope, a, b, STATE_TAGS)), a, b)
            for a, b in zip(edges[:-1], edges[1:], strict=True)]


def pooled(states: list[WindowState]) -> WindowState | None:
    """The union of several windows (statistics add)."""
    if not states:
        return None
    fine = streaming.BinStats()
    count, total, predicted = np.zeros(FINE), np.zeros(FINE), 0.0
    for s in states:
        fine = fine + s.fine
        count, total, predicted = count + s.confidence_count, total + s.confidence_sum, predicted + s.predicted
    return WindowState(states[0].start, states[-1].end, fine, predicted, count, total)
