"""Seeded, deterministic, single-threaded torch for a block of code, without touching global state.

One intra-op thread is also the fast choice here: the networks are tiny, and on a busy 2-core machine
torch's thread pool spends more time waiting than computing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seeded, deterministic, single-threaded torch inside the block; global state restored after."""
    previous_threads = torch.get_num_threads()
    previous_det = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous_det)
            torch.set_num_threads(previous_threads)
