"""bench/soak.py: quantiles of the server's wait histograms over the soak (the counts between two scrapes)."""

from __future__ import annotations

import math

from bench.soak import wait_quantile


def test_wait_quantile_reads_the_bucket_that_holds_the_quantile_of_the_difference() -> None:
    before = {0.001: 2.0, 0.01: 5.0, math.inf: 5.0}
    after = {0.001: 12.0, 0.01: 100.0, math.inf: 105.0}  # in between: 10 ≤ 1 ms, 85 in (1, 10] ms, 5 above
    assert wait_quantile(before, after, 0.05) == (100.0, 0.001)
    assert wait_quantile(before, after, 0.5) == (100.0, 0.01)
    assert wait_quantile(before, after, 0.99) == (100.0, math.inf)


def test_wait_quantile_of_no_observations_is_nan() -> None:
    n, q = wait_quantile({0.001: 3.0, math.inf: 3.0}, {0.001: 3.0, math.inf: 3.0}, 0.99)
    assert n == 0.0 and math.isnan(q)
