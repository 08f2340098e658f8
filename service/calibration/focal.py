"""Focal temperature scaling (Komisarenko & Kull 2024): FTS_{T,γ}(z) = ψ_γ(softmax(z / T)).

Fit by validation NLL (papers.md §2.3, recommended service default): the paper's γ grid
{−0.75, −0.5, −0.25, 0, 0.25, 0.5, 0.75, 1, 3, 5} with T optimised per γ (on a seeded subsample of
``grid_rows`` rows, by default min(2000, max(500, 20,000/K))), then a joint continuous refinement of
(log T, γ) on all rows: quasi-Newton steps with the analytic gradient, starting from the subsample's
Hessian and corrected by BFGS updates. Two deviations from the paper's grid: γ = −1 is left out
(there 1 − γ·r → 0 as q → 1 and the map turns confidence-raising, papers.md §2.2), and γ = 100
("plain TS") is γ = 0 here.
γ = 0 is temperature scaling exactly; passing ``gamma=`` fixes γ (e.g. the γ a model was trained with)
and fits T only.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike

from service.calibration.base import (
    CalibrationInputError,
    FloatArray,
    IntArray,
    NotFittedError,
    check_fit_inputs,
    check_logits,
    check_method,
    logsumexp_cm,
    softmax,
)
from service.calibration.focal_map import FocalParts, check_gamma, log_focal_map_logits
from service.calibration.temperature import fit_temperature, temperature_nll

GAMMA_GRID = (-0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 3.0, 5.0)
GAMMA_BOUNDS = (-0.9, 10.0)  # refinement range; γ ≥ −0.9 keeps 1 − γ·r ≥ 0.1
LOG_T_BOUNDS = (float(np.log(1e-2)), float(np.log(1e2)))


# Rows per block so that each (K, block) temporary stays in cache (~512 KB): the objective makes ~40
# elementwise passes, and on whole 50,000×10 arrays memory traffic, not arithmetic, dominates.
_BLOCK_ELEMENTS = 1 << 16


class FocalObjective:
    """Mean NLL of FTS_{T,γ} on fixed (logits (n, K), labels (n,)) and its gradient in (log T, γ).

    With s = β·z (β = 1/T), a = log q, u = 1 − q, d = z − max z, δ_k = ∂a_k/∂β = d_k − E_q[d]:
        ∂ log h_k/∂γ = −b_k + r_k/(1 − γ r_k)
        ∂ log h_k/∂β = δ_k + γ·(q_k/u_k)·δ_k + γ·q_k·δ_k·(a_k + u_k)/u_k² / (1 − γ r_k)
    For the top class δ = u·W with W = Σ_{j≠top} (q_j/u)·|d_j|, which keeps q/u·δ finite as u → 0.
    Work is class-major (K, n) in cache-sized blocks of rows; the argmax and d do not depend on
    (T, γ) and are computed once.
    """

    def __init__(self, logits: FloatArray, labels: IntArray) -> None:
        z = np.ascontiguousarray(logits.T)
        n = z.shape[1]
        cols = np.arange(n)
        top = np.asarray(z.argmax(axis=0), dtype=np.int64)
        d = z - z[top, cols]
        step = max(1, _BLOCK_ELEMENTS // z.shape[0])
        self.n = n
        self.blocks = [
            (
                np.ascontiguousarray(z[:, i : i + step]),
                np.ascontiguousarray(d[:, i : i + step]),
                top[i : i + step],
                labels[i : i + step],
            )
            for i in range(0, n, step)
        ]

    def __call__(self, log_t: float, gamma: float) -> tuple[float, FloatArray]:
        beta = float(np.exp(-log_t))
        totals = np.zeros(3)
        for block in self.blocks:
            totals += _block_sums(*block, beta, gamma)
        return float(totals[0] / self.n), np.array([-beta * totals[1], totals[2]]) / self.n


def _block_sums(z: FloatArray, d: FloatArray, top: IntArray, labels: IntArray, beta: float, gamma: float) -> FloatArray:
    """[Σ NLL, Σ ∂NLL/∂β, Σ ∂NLL/∂γ] over one block of class-major rows (see FocalObjective)."""
    cols = np.arange(z.shape[1])
    parts = FocalParts.from_logits(z * beta, top)
    log_h = parts.log_h(gamma)
    log_norm = logsumexp_cm(log_h)
    nll = float((log_norm - log_h[labels, cols]).sum())
    psi = np.exp(log_h - log_norm)

    q, u = np.exp(parts.a), np.exp(parts.b)
    delta = d - (q * d).sum(axis=0)
    p_term = np.exp(np.minimum(parts.a - parts.b, 0.0)) * delta  # q/u·δ; q ≤ 1/2 off the top
    u_safe = np.maximum(u, 0.5)  # every class but the top has u ≥ 1/2; the top is set below
    q_term = (parts.a + u) / (u_safe * u_safe) * q * delta
    w = (np.exp(parts.rest_log) * -d).sum(axis=0)
    u_top, a_top, q_top = u[top, cols], parts.a[top, cols], q[top, cols]
    a_plus_u_over_u = np.where(
        u_top < 1e-4, -0.5 * u_top - u_top * u_top / 3.0, (a_top + u_top) / np.maximum(u_top, 1e-4)
    )
    delta[top, cols] = u_top * w
    p_term[top, cols] = q_top * w
    q_term[top, cols] = q_top * w * a_plus_u_over_u
    one_minus = 1.0 - gamma * parts.r
    d_beta = delta + gamma * p_term + gamma * q_term / one_minus
    d_gamma = parts.r / one_minus - parts.b
    g_beta = float(((psi * d_beta).sum(axis=0) - d_beta[labels, cols]).sum())
    g_gamma = float(((psi * d_gamma).sum(axis=0) - d_gamma[labels, cols]).sum())
    return np.array([nll, g_beta, g_gamma])


def _fit_log_t(objective: FocalObjective, gamma: float, start: float) -> tuple[float, float]:
    """(log T, NLL) minimising FTS NLL over log T for a fixed γ."""

    def value_and_grad(x: FloatArray) -> tuple[float, FloatArray]:
        value, grad = objective(float(x[0]), gamma)
        return value, grad[:1]

    from scipy.optimize import minimize  # lazy: only fitting needs scipy.optimize
    res = minimize(
        value_and_grad,
        x0=[start],
        jac=True,
        method="L-BFGS-B",
        bounds=[LOG_T_BOUNDS],
    )
    return float(res.x[0]), float(res.fun)


def _hessian(objective: FocalObjective, x: FloatArray, step: float = 1e-4) -> FloatArray:
    """2×2 Hessian of the objective in (log T, γ) by central differences of its analytic gradient,
    made symmetric and positive definite (eigenvalues floored) so a Newton step always descends."""
    cols = []
    for i in range(2):
        e = np.zeros(2)
        e[i] = step
        cols.append((objective(*(x + e))[1] - objective(*(x - e))[1]) / (2 * step))
    hess = np.column_stack(cols)
    values, vectors = np.linalg.eigh(0.5 * (hess + hess.T))
    values = np.maximum(values, max(1e-8, 1e-6 * float(values.max())))
    out: FloatArray = (vectors * values) @ vectors.T
    return out


def _newton_refine(
    full: FocalObjective, hessian: FloatArray, x: FloatArray, max_iter: int = 30
) -> tuple[FloatArray, float]:
    """Minimise the full-data objective from x by projected quasi-Newton steps: the first uses the grid
    subsample's Hessian (close to the full-data one), BFGS updates correct it; each step costs one
    full-data evaluation when the unit step is accepted, which it nearly always is."""
    lower = np.array([LOG_T_BOUNDS[0], GAMMA_BOUNDS[0]])
    upper = np.array([LOG_T_BOUNDS[1], GAMMA_BOUNDS[1]])
    value, grad = full(*x)
    for _ in range(max_iter):
        direction = -np.linalg.solve(hessian, grad)
        if float(-grad @ direction) < 1e-12:  # predicted decrease far below any useful NLL difference
            break
        step = 1.0
        while step > 1e-6:
            x_new = np.clip(x + step * direction, lower, upper)
            value_new, grad_new = full(*x_new)
            if value_new <= value + 1e-4 * float(grad @ (x_new - x)):
                break
            step *= 0.5
        else:
            break
        done = value - value_new < 1e-14
        s_k, y_k = x_new - x, grad_new - grad
        if float(s_k @ y_k) > 1e-12:  # BFGS update keeps the approximation positive definite
            h_s = hessian @ s_k
            hessian = hessian - np.outer(h_s, h_s) / float(s_k @ h_s) + np.outer(y_k, y_k) / float(s_k @ y_k)
        x, value, grad = x_new, value_new, grad_new
        if done:
            break
    return x, value


def fit_focal_temperature(
    logits: FloatArray, labels: IntArray, *, gamma: float | None = None, grid_rows: int | None = None, seed: int = 0
) -> tuple[float, float]:
    """(T, γ) minimising the validation NLL of FTS on (logits (n, K), labels (n,))."""
    t_ts = fit_temperature(logits, labels)
    log_t_ts = float(np.log(t_ts))
    if gamma == 0.0:
        return t_ts, 0.0
    full = FocalObjective(logits, labels)
    if gamma is not None:
        start = log_t_ts + float(np.log1p(max(gamma, -0.5)))
        return float(np.exp(_fit_log_t(full, gamma, start)[0])), gamma
    grid = full
    if grid_rows is None:  # ~20,000 logits: the grid only picks the start of the joint refinement
        grid_rows = min(2000, max(500, 20_000 // logits.shape[1]))
    if logits.shape[0] > grid_rows:
        sub = np.random.default_rng(seed).choice(logits.shape[0], grid_rows, replace=False)
        grid = FocalObjective(logits[sub], labels[sub])
    best = (np.inf, log_t_ts, 0.0)
    for g in GAMMA_GRID:
        # ψ_γ ≈ softmax((1 + γ)·logit) (papers.md §2.2), so T ≈ (1 + γ)·T_TS is a good start.
        log_t, value = _fit_log_t(grid, g, log_t_ts + float(np.log1p(g)))
        best = min(best, (value, log_t, g))
    x0 = np.array([best[1], best[2]])
    x, value = _newton_refine(full, _hessian(grid, x0), x0)
    if not value < temperature_nll(logits, labels, t_ts):  # never worse than TS, which γ = 0 contains
        return t_ts, 0.0
    return float(np.exp(x[0])), float(x[1])


class FocalTemperatureScaling:
    """FTS_{T,γ}(z) = ψ_γ(softmax(z / T)); γ = 0 is temperature scaling. Preserves the argmax."""

    method: ClassVar[str] = "focal_temperature"
    preserves_argmax: ClassVar[bool] = True
    temperature_: float
    gamma_: float

    def __init__(self, *, gamma: float | None = None, grid_rows: int | None = None, seed: int = 0) -> None:
        self.gamma = None if gamma is None else check_gamma(gamma)
        if gamma is not None and gamma < GAMMA_BOUNDS[0]:
            raise CalibrationInputError(f"a fixed focal gamma must be ≥ {GAMMA_BOUNDS[0]}; got {gamma}")
        self.grid_rows = grid_rows
        self.seed = seed

    def fit(self, logits: ArrayLike, labels: ArrayLike) -> Self:
        z, y = check_fit_inputs(logits, labels)
        self.temperature_, self.gamma_ = fit_focal_temperature(
            z, y, gamma=self.gamma, grid_rows=self.grid_rows, seed=self.seed
        )
        return self

    def predict_proba(self, logits: ArrayLike) -> FloatArray:
        try:
            inv_t, gamma = 1.0 / self.temperature_, self.gamma_
        except AttributeError:
            raise NotFittedError("focal temperature scaling is not fitted; call fit() first") from None
        z = check_logits(logits) * inv_t
        if gamma == 0.0:
            return softmax(z)
        return np.exp(log_focal_map_logits(z, gamma))

    def to_dict(self) -> dict[str, Any]:
        if not hasattr(self, "gamma_"):
            raise NotFittedError("focal temperature scaling is not fitted; call fit() first")
        return {
            "method": self.method,
            "params": {
                "temperature": self.temperature_,
                "gamma": self.gamma_,
                "fixed_gamma": self.gamma,
                "grid_rows": self.grid_rows,
                "seed": self.seed,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        params = check_method(data, cls.method)
        fixed = params.get("fixed_gamma")
        cal = cls(
            gamma=None if fixed is None else float(fixed),
            grid_rows=None if params.get("grid_rows") is None else int(params["grid_rows"]),
            seed=int(params.get("seed", 0)),
        )
        cal.temperature_ = float(params["temperature"])
        cal.gamma_ = check_gamma(float(params["gamma"]))
        return cal
