"""Curvature diagnostics (Kimura & Naganuma 2024): Hessian top eigenvalue and trace of a mean loss.

H(θ) = ∇²_θ L̄(θ), L̄ the mean loss over a fixed, seeded probe set, the model in eval() (float32 by
default: as accurate as float64 to ~1e-6 relative here and several times faster for the CNN).
Hessian-vector products by double backprop (Pearlmutter 1994); the gradient graph is built once and
reused for every product.  Top eigenvalue by power iteration and trace by Hutchinson's estimator with
Rademacher probes, both as in PyHessian (Yao et al. 2020).  Reported for the training loss and for
cross-entropy at the same weights, since raw Hessians of different losses mix scale with geometry
(papers.md §4.2).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from service.training.losses import cross_entropy
from service.training.seeding import deterministic

Hvp = Callable[[Sequence[Tensor]], tuple[Tensor, ...]]


def make_hvp(loss: Tensor, params: Sequence[Tensor]) -> Hvp:
    """v ↦ H·v for the scalar ``loss`` w.r.t. ``params`` (v given per parameter tensor)."""
    grads = torch.autograd.grad(loss, params, create_graph=True)

    def hvp(v: Sequence[Tensor]) -> tuple[Tensor, ...]:
        return torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)

    return hvp


def _dot(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    return float(sum((x * y).sum() for x, y in zip(a, b, strict=True)))


def _normalise(v: Sequence[Tensor]) -> list[Tensor]:
    norm = math.sqrt(_dot(v, v)) + 1e-30
    return [x / norm for x in v]


def top_eigenvalue(
    hvp: Hvp, params: Sequence[Tensor], *, max_iter: int = 100, tol: float = 1e-3, seed: int = 0
) -> float:
    """Power iteration: v ← Hv/‖Hv‖, λ = vᵀHv, until |Δλ|/(|λ|+1e-6) < tol.

    Returns the eigenvalue of largest magnitude (it can be negative near a saddle point).
    """
    gen = torch.Generator().manual_seed(seed)
    v = _normalise([torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params])
    eigenvalue = 0.0
    for i in range(max_iter):
        hv = hvp(v)
        new = _dot(v, hv)
        v = _normalise([x.detach() for x in hv])
        if i > 0 and abs(new - eigenvalue) / (abs(eigenvalue) + 1e-6) < tol:
            return new
        eigenvalue = new
    return eigenvalue


def hutchinson_trace(
    hvp: Hvp,
    params: Sequence[Tensor],
    *,
    max_iter: int = 100,
    min_iter: int = 10,
    rel_stderr: float = 0.01,
    seed: int = 0,
) -> tuple[float, float]:
    """tr(H) ≈ mean of vᵀHv over Rademacher v; returns (mean, standard error of the mean).

    Stops after ``min_iter`` probes once the standard error is below ``rel_stderr`` · |mean|.
    """
    gen = torch.Generator().manual_seed(seed)
    samples: list[float] = []
    for _ in range(max_iter):
        v = [torch.randint(0, 2, p.shape, generator=gen).to(p.dtype) * 2 - 1 for p in params]
        samples.append(_dot(v, hvp(v)))
        if len(samples) >= min_iter:
            mean, se = _mean_stderr(samples)
            if se < rel_stderr * abs(mean):
                break
    return _mean_stderr(samples)


def _mean_stderr(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples, dtype=np.float64)
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else math.inf
    return float(arr.mean()), se


@dataclass(frozen=True)
class CurvatureConfig:
    n_probe: int = 512
    seed: int = 0
    max_iter: int = 100
    tol: float = 1e-3
    trace_max_iter: int = 100
    dtype: torch.dtype = torch.float32


def probe_rows(n_rows: int, n_probe: int, seed: int) -> np.ndarray:
    """Indices of a fixed, seeded probe subset (all rows if there are fewer than ``n_probe``)."""
    if n_rows <= n_probe:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=n_probe, replace=False))


def curvature_report(
    model: nn.Module,
    train_loss: Callable[[Tensor, Tensor], Tensor],
    X: np.ndarray,
    y: np.ndarray,
    config: CurvatureConfig | None = None,
) -> dict[str, float]:
    """Top eigenvalue and trace (± SE) of the Hessian of the training loss and of CE, on a probe set.

    Keys: ``hessian_top_eig_train_loss``, ``hessian_trace_train_loss``, ``hessian_trace_train_loss_stderr``,
    the same with ``_ce``, and ``probe_size``.  The model is copied (to ``config.dtype``) and put in eval().
    """
    cfg = config or CurvatureConfig()
    rows = probe_rows(len(y), cfg.n_probe, cfg.seed)
    net = copy.deepcopy(model).to(cfg.dtype).eval()
    params = [p for p in net.parameters() if p.requires_grad]
    X_probe = torch.as_tensor(X[rows], dtype=cfg.dtype)
    y_probe = torch.as_tensor(y[rows], dtype=torch.int64)
    report: dict[str, float] = {"probe_size": float(len(rows))}
    with deterministic(cfg.seed):
        for suffix, loss_fn in (("train_loss", train_loss), ("ce", cross_entropy)):
            hvp = make_hvp(loss_fn(net(X_probe), y_probe), params)
            report[f"hessian_top_eig_{suffix}"] = top_eigenvalue(
                hvp, params, max_iter=cfg.max_iter, tol=cfg.tol, seed=cfg.seed
            )
            trace, stderr = hutchinson_trace(hvp, params, max_iter=cfg.trace_max_iter, seed=cfg.seed)
            report[f"hessian_trace_{suffix}"] = trace
            report[f"hessian_trace_{suffix}_stderr"] = stderr
    return report
