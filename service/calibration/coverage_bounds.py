"""Online checks of a conformal promise from labelled traffic: a CI for the realised coverage, the coverage a
fitted calibrator can be held to, and a one-sided test for coverage below it.

A fitted split-conformal set has *conditional* coverage F(q̂) ~ Beta(k, n + 1 − k) over calibration sets of
size n, k = ⌈(n+1)(1−α)⌉ (Vovk 2012, "Conditional validity of inductive conformal predictors"; Angelopoulos &
Bates 2021 §3.2). One unlucky calibration set may thus cover 0.89 for a 0.9 target forever; an alarm against
the nominal target would then fire on every long enough window without any shift. We test against the
δ-quantile of that Beta instead: with probability 1 − δ over the calibration set the deployed set covers at
least that much, and the one-sided binomial test adds at most its own level per check.
"""

from __future__ import annotations

import math

from service.calibration.conformal_scores import conformal_rank

# scipy.special, not scipy.stats: the same functions (beta.ppf = betaincinv, binom.cdf = bdtr, norm.ppf = ndtri)
# without importing scipy.stats into the serving process (≈ 0.5 s of start-up and tens of MiB of RSS)
from service.calibration.lazy_special import special  # scipy.special on first use


def clopper_pearson(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial CI (Clopper & Pearson 1934) for a proportion; (0, 1) when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    tail = (1.0 - level) / 2.0
    lo = 0.0 if successes <= 0 else float(special().betaincinv(successes, n - successes + 1, tail))
    hi = 1.0 if successes >= n else float(special().betaincinv(successes + 1, n - successes, 1.0 - tail))
    return lo, hi


def conditional_coverage_floor(n_cal: int, coverage: float, delta: float) -> float:
    """The δ-quantile of Beta(k, n + 1 − k): a set fitted on ``n_cal`` rows covers at least this with
    probability 1 − δ. 1 when k > n (the set is every class, so it always covers)."""
    k = conformal_rank(n_cal, coverage)
    if k > n_cal:
        return 1.0
    return float(special().betaincinv(k, n_cal + 1 - k, delta))


def mondrian_coverage_floor(group_sizes: list[int], coverage: float, delta: float) -> float:
    """Marginal floor of a Mondrian set: each class's floor at δ/G (union bound), weighted by its share of the
    calibration rows (the class mix the set was fitted on)."""
    total = sum(group_sizes)
    if total == 0:
        return 1.0
    g = len(group_sizes)
    return sum(n_k / total * conditional_coverage_floor(n_k, coverage, delta / g) for n_k in group_sizes if n_k)


def shortfall_pvalue(covered: int, n: int, reference: float) -> float:
    """One-sided exact binomial p-value of H0 "coverage ≥ reference": P(Bin(n, reference) ≤ covered)."""
    if n <= 0:
        return 1.0
    return float(special().bdtr(covered, n, reference))


def coverage_alarm(covered: int, n: int, reference: float, *, false_alarm: float, n_min: int) -> bool:
    """Fires when at least ``n_min`` labels show coverage significantly below ``reference`` at level
    ``false_alarm`` (its false-alarm probability per check when the promise holds)."""
    return n >= n_min and shortfall_pvalue(covered, n, reference) < false_alarm


def normal_interval(mean: float, mean_sq: float, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """CLT interval for a mean from Σx/n and Σx²/n (the realised − expected cost gap); None below 2 rows."""
    if n <= 1:
        return None
    var = max(mean_sq - mean * mean, 0.0) * n / (n - 1)
    z = float(special().ndtri(0.5 + level / 2.0))
    half_width = z * math.sqrt(var / n)
    return mean - half_width, mean + half_width
