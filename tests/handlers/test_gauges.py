"""When the window gauges refresh: every interval, or less often when a refresh costs more than its share."""

from __future__ import annotations

import pytest

from service.handlers.gauges import MAX_DUTY, next_gauge_refresh


def test_a_cheap_refresh_keeps_the_interval() -> None:
    assert next_gauge_refresh(100.0, 15.0, 0.2) == pytest.approx(115.0)


def test_an_expensive_refresh_stretches_the_period_to_its_duty_share() -> None:
    # 30 s of CPU (what one label-shift bootstrap took before it was accelerated) → next in 600 s, not 15 s
    assert next_gauge_refresh(100.0, 15.0, 30.0) == pytest.approx(100.0 + 30.0 / MAX_DUTY)
    assert 30.0 / (next_gauge_refresh(0.0, 15.0, 30.0) - 0.0) == pytest.approx(0.05)
