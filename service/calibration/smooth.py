"""Smooth ECE (Błasiok & Nakkiran, ICLR 2024), the algorithm of ``relplot.smECE`` re-implemented
(apple/ml-calibration@18ff21a, papers.md §5) so the service needs no plotting dependency.

For binary predictions f ∈ [0, 1] and outcomes y ∈ {0, 1}, with a Gaussian kernel K_σ reflected at
0 and 1 and residuals r_i = f_i − y_i:
    r̂(t) = Σ_i K_σ(t, f_i)·r_i / δ̂(t),   δ̂(t) = Σ_i K_σ(t, f_i) + 1e-4,
    smECE_σ = Σ_t |r̂(t)|·δ̂(t) / Σ_t δ̂(t)   over t = linspace(0, 1, max(200, round(10/σ))).
As in relplot the data are first spread linearly onto a grid of max(2000, round(20/σ))//2 + 1 points,
convolved there and interpolated back. σ is the fixed point σ = smECE_σ found by 10 bisection steps.
"""

from __future__ import annotations

import numpy as np

from service.calibration.base import FloatArray
from service.calibration.binned import weighted_bincount

_MESH_POINTS = 200
_DENSITY_EPS = 1e-4


def _spread_to_grid(f: FloatArray, values: FloatArray, size: int) -> FloatArray:
    """Linear-interpolation weights of each f on a grid of ``size`` points over [0, 1], times values."""
    pos = f * (size - 1)
    left = pos.astype(np.int64).clip(0, size - 2)
    frac = pos - left
    return weighted_bincount(left, (1.0 - frac) * values, size) + weighted_bincount(left + 1, frac * values, size)


def _reflected_smooth(grid_values: FloatArray, sigma: float) -> FloatArray:
    """Convolve with a Gaussian of width σ (in [0, 1] units) reflected at both ends of the grid."""
    size = grid_values.size
    s = np.linspace(0.0, 1.0, size)
    kernel = np.exp(-(s - 0.5) * (s - 0.5) / (2.0 * sigma**2)) / (np.sqrt(2.0 * np.pi) * sigma)
    flipped = grid_values[::-1]
    extended = np.concatenate([flipped[:-1], grid_values, flipped[1:]])
    return np.convolve(extended, kernel, "valid")[size // 2 : size // 2 + size]


def _interpolate(t: FloatArray, values: FloatArray) -> FloatArray:
    """Piecewise-linear function through (i/(len−1), values[i]) evaluated at t."""
    cells = values.size - 1
    left = (t * cells).astype(np.int64).clip(0, cells - 1)
    frac = (t - left * (1.0 / cells)) / (1.0 / cells)
    out: FloatArray = values[left] * (1.0 - frac) + values[left + 1] * frac
    return out


def smooth_ece_sigma(f: FloatArray, y: FloatArray, sigma: float) -> float:
    """smECE at a fixed bandwidth σ; f, y: (n,) predictions and 0/1 outcomes (relplot.smECE_sigma)."""
    grid_size = max(2000, round(20.0 / sigma)) // 2 + 1
    residual = _reflected_smooth(_spread_to_grid(f, f - y, grid_size), sigma)
    mass = _reflected_smooth(_spread_to_grid(f, np.ones_like(f), grid_size), sigma)
    t = np.linspace(0.0, 1.0, max(round(10.0 / sigma), _MESH_POINTS))
    density = _interpolate(t, mass) + _DENSITY_EPS
    smoothed = _interpolate(t, residual) / density
    return float(np.sum(np.abs(smoothed) * density) / np.sum(density))


def smooth_ece_binary(f: FloatArray, y: FloatArray, *, eps: float = 1e-3, refine: int = 10) -> float:
    """smECE at the self-consistent bandwidth σ* = smECE_σ* (relplot.smECE); f, y: (n,)."""

    def too_narrow(sigma: float) -> bool:
        return sigma < eps or sigma < smooth_ece_sigma(f, y, sigma)

    sigma = 1.0
    if not too_narrow(sigma):
        # Bisection on (0, 1]: keep the smallest σ seen with σ ≥ smECE_σ, as relplot.search_param.
        wide_enough, narrow = 1.0, 0.0
        for _ in range(refine):
            mid = 0.5 * (wide_enough + narrow)
            if too_narrow(mid):
                narrow = mid
            else:
                wide_enough = mid
        sigma = wide_enough
    return smooth_ece_sigma(f, y, sigma)
