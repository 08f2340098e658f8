"""``scipy.special``, imported on first use: ~50 MiB of RSS and ~0.1 s of start-up that the serving process
only pays once a monitoring or refit path needs a special function (none is on the predict path)."""

from __future__ import annotations

from typing import Any


def special() -> Any:
    import scipy.special

    return scipy.special
