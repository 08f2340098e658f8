"""The two sizes of the experiment: ``--quick`` (CI smoke test, ≤ 3 min) and the full run (≤ 45 min, 2 cores).

Both run every study and write every table and picture, so the quick report has the full report's shape.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Config:
    mode: str
    seeds: tuple[int, ...]
    # MNIST-1D focal study: the CNN of Greydanus & Kobak, trained to a fixed epoch count (no early stop)
    # with Adam at ``lr`` (experiments/science/focal.py says why not SGD).
    mnist_samples: int
    focal_epochs: int
    focal_gammas: tuple[float, ...]  # fixed-γ focal arms besides CE (γ = 0) and FLSD-53
    lr: float
    batch_size: int
    curvature_probe: int
    curvature_iters: int
    # AnyLoss study
    anyloss_samples: int
    anyloss_epochs: int
    # Tabular study (make_classification at large N, and digits)
    tabular_samples: int
    forest_trees: int

    def with_seeds(self, n: int) -> Config:
        return replace(self, seeds=tuple(range(n)))


FULL = Config(
    mode="full",
    seeds=tuple(range(10)),
    mnist_samples=10_000,
    focal_epochs=40,
    focal_gammas=(1.0, 2.0, 3.0),
    lr=0.01,
    batch_size=128,
    curvature_probe=512,
    curvature_iters=50,
    anyloss_samples=10_000,
    anyloss_epochs=20,
    tabular_samples=20_000,
    forest_trees=200,
)

QUICK = Config(
    mode="quick",
    seeds=tuple(range(3)),
    mnist_samples=2_500,
    focal_epochs=8,
    focal_gammas=(1.0, 2.0, 3.0),
    lr=0.01,
    batch_size=128,
    curvature_probe=128,
    curvature_iters=10,
    anyloss_samples=3_000,
    anyloss_epochs=5,
    tabular_samples=2_000,
    forest_trees=30,
)
