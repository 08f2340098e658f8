import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from service.training.curvature import (
    CurvatureConfig,
    curvature_report,
    hutchinson_trace,
    make_hvp,
    probe_rows,
    top_eigenvalue,
)
from service.training.losses import cross_entropy, focal_loss


@pytest.fixture
def tiny_problem():
    """A 3-4-3 tanh network (31 parameters) and 40 rows, float64."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    X = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (40,), generator=gen)
    return model, X, y


def exact_hessian(model: nn.Module, loss_fn, X, y) -> torch.Tensor:
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of(theta: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(theta, [math.prod(s) for s in shapes])
        params = {n: c.reshape(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        return loss_fn(functional_call(model, params, (X,)), y)

    return torch.autograd.functional.hessian(loss_of, flat)


@pytest.mark.parametrize("loss_fn", [cross_entropy, lambda z, y: focal_loss(z, y, 2.0)], ids=["ce", "focal2"])
def test_hvp_matches_exact_hessian(tiny_problem, loss_fn):
    model, X, y = tiny_problem
    params = list(model.parameters())
    H = exact_hessian(model, loss_fn, X, y)
    v = torch.randn(H.shape[0], dtype=torch.float64)
    pieces = list(torch.split(v, [p.numel() for p in params]))
    hv = make_hvp(loss_fn(model(X), y), params)([c.reshape(p.shape) for c, p in zip(pieces, params, strict=True)])
    torch.testing.assert_close(torch.cat([t.reshape(-1) for t in hv]), H @ v)


@pytest.mark.parametrize("loss_fn", [cross_entropy, lambda z, y: focal_loss(z, y, 2.0)], ids=["ce", "focal2"])
def test_power_iteration_matches_eigvalsh(tiny_problem, loss_fn):
    model, X, y = tiny_problem
    params = list(model.parameters())
    eigenvalues = torch.linalg.eigvalsh(exact_hessian(model, loss_fn, X, y))
    dominant = eigenvalues[eigenvalues.abs().argmax()].item()
    hvp = make_hvp(loss_fn(model(X), y), params)
    got = top_eigenvalue(hvp, params, max_iter=5000, tol=1e-10, seed=1)
    assert got == pytest.approx(dominant, rel=1e-4)


def test_hutchinson_trace_within_three_standard_errors(tiny_problem):
    model, X, y = tiny_problem
    params = list(model.parameters())
    exact = torch.trace(exact_hessian(model, cross_entropy, X, y)).item()
    hvp = make_hvp(cross_entropy(model(X), y), params)
    trace, stderr = hutchinson_trace(hvp, params, max_iter=400, rel_stderr=0.0, seed=2)
    assert 0 < stderr < 0.2 * abs(exact)
    assert abs(trace - exact) < 3 * stderr


def test_probe_rows_fixed_and_seeded():
    np.testing.assert_array_equal(probe_rows(10, 512, 0), np.arange(10))
    a, b = probe_rows(1000, 100, 3), probe_rows(1000, 100, 3)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) == 100


def test_report_has_both_losses_and_leaves_the_model_alone(tiny_problem):
    model, X, y = tiny_problem
    model = model.float().train()
    before = [p.detach().clone() for p in model.parameters()]
    report = curvature_report(
        model, lambda z, t: focal_loss(z, t, 3.0), X.numpy(), y.numpy(), CurvatureConfig(n_probe=32)
    )
    assert set(report) == {
        "probe_size",
        "hessian_top_eig_train_loss",
        "hessian_trace_train_loss",
        "hessian_trace_train_loss_stderr",
        "hessian_top_eig_ce",
        "hessian_trace_ce",
        "hessian_trace_ce_stderr",
    }
    assert report["probe_size"] == 32
    assert all(math.isfinite(v) for v in report.values())
    assert model.training and all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
