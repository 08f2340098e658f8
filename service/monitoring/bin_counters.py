"""Adding committed labels to the Prometheus per-bin counters (the whole population's and the slices')."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np
from prometheus_client import Counter

from service.calibration import streaming


class BinCounters(Protocol):
    bin_count: Counter
    bin_confidence: Counter
    bin_correct: Counter


def count_bins(counters: BinCounters, stats: Iterable[tuple[tuple[str, ...], streaming.BinStats]],
               n_bins: int) -> None:
    """Sum the fine-bin stats per label set at ``n_bins`` coarse bins first, then one ``inc`` per non-empty
    bin and counter (in multiprocess mode every inc is a locked write to a memory-mapped file)."""
    sums: dict[tuple[str, ...], np.ndarray] = {}
    for series, s in stats:
        coarse = np.stack(s.coarse(n_bins))
        sums[series] = sums[series] + coarse if series in sums else coarse
    for series, (count, confidence, correct) in sums.items():
        for b in np.flatnonzero(count):
            counters.bin_count.labels(*series, str(b)).inc(float(count[b]))
            counters.bin_confidence.labels(*series, str(b)).inc(float(confidence[b]))
            counters.bin_correct.labels(*series, str(b)).inc(float(correct[b]))
