"""Synthetic calibration data shared by the calibration tests."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tests.factories import softmax  # the one numpy reference softmax of the test suite

__all__ = ["softmax"]


def sample_labels(probs: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.int64]:
    """One label per row drawn from that row's class probabilities."""
    u = rng.random(probs.shape[0])[:, None]
    labels = (probs.cumsum(axis=1) < u).sum(axis=1)
    return np.minimum(labels, probs.shape[1] - 1).astype(np.int64)


def overconfident_logits(
    n: int, k: int, *, seed: int = 0, scale: float = 3.0, temperature: float = 1.5
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Logits z and labels drawn from softmax(z / temperature): a model overconfident by ``temperature``."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * scale
    return z, sample_labels(softmax(z / temperature), rng)


def random_probs(n: int, k: int, *, seed: int = 0, scale: float = 3.0) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Softmax probabilities of random logits and labels drawn from a sharper version (miscalibrated)."""
    z, y = overconfident_logits(n, k, seed=seed, scale=scale, temperature=0.7)
    return softmax(z), y
