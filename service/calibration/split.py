"""Seeded stratified split of a labelled set into a fit part and a held-out evaluation part."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import CalibrationInputError, IntArray


def stratified_split(labels: ArrayLike, *, test_size: float = 0.3, seed: int = 0) -> tuple[IntArray, IntArray]:
    """(fit_idx, eval_idx): sorted row indices, each class split in proportion ``test_size``.

    Class k with n_k rows sends round(test_size·n_k) of them to evaluation, clamped to [1, n_k − 1] so
    that both parts see every class with at least two rows; a class with one row goes to the fit part.
    Within a class the rows are chosen uniformly at random by ``numpy.random.default_rng(seed)``.
    """
    if not 0.0 < test_size < 1.0:
        raise CalibrationInputError(f"test_size must lie in (0, 1); got {test_size}")
    y = np.asarray(labels, dtype=np.int64)
    n = y.size
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    order = order[np.argsort(y[order], kind="stable")]  # grouped by class, random within each class
    sorted_y = y[order]
    classes, starts, sizes = np.unique(sorted_y, return_index=True, return_counts=True)
    n_eval = np.clip(np.round(test_size * sizes), 1, sizes - 1).astype(np.int64)
    n_eval[sizes < 2] = 0
    per_row = np.repeat(np.arange(classes.size), sizes)
    rank = np.arange(n) - starts[per_row]
    is_eval = rank < n_eval[per_row]
    return np.sort(order[~is_eval]), np.sort(order[is_eval])
