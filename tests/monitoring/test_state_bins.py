"""The database layer's copy of the micro-binning equals the calibration core's, edge floats included."""

from __future__ import annotations

import numpy as np

from service.calibration import streaming
from service.db import stats


def test_fine_bins_match_the_calibration_core() -> None:
    assert stats.FINE_BINS == streaming.FINE_BINS
    rng = np.random.default_rng(0)
    edges = np.arange(301) / 300
    values = np.concatenate([rng.random(10_000), edges, np.nextafter(edges, 2), np.nextafter(edges, -1),
                             [0.0, 1.0, 1e-12, 1 - 1e-12]]).clip(0, 1)
    assert np.array_equal(stats.fine_bin_index(values), streaming.fine_bin_index(values))
