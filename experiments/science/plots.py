"""Reliability diagrams (with bin counts and the identity line) and ECE against γ, as PNGs (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on CI
import matplotlib.pyplot as plt
import numpy as np

from experiments.science.stats import mean_ci
from service.calibration import metrics

N_BINS = 15


def _reliability(ax: plt.Axes, probs: np.ndarray, labels: np.ndarray, title: str) -> None:
    bins = metrics.reliability_bins(probs, labels, n_bins=N_BINS)
    lo, width = bins.edges[:-1], np.diff(bins.edges)
    filled = bins.count > 0
    ax.bar(
        lo[filled],
        bins.accuracy[filled],
        width=width[filled],
        align="edge",
        color="#4c72b0",
        edgecolor="black",
        linewidth=0.5,
        label="accuracy",
    )
    gap = bins.confidence[filled] - bins.accuracy[filled]
    ax.bar(
        lo[filled],
        gap,
        bottom=bins.accuracy[filled],
        width=width[filled],
        align="edge",
        color="#dd8452",
        alpha=0.5,
        edgecolor="none",
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="identity")
    for x, w, acc, n in zip(lo[filled], width[filled], bins.accuracy[filled], bins.count[filled], strict=True):
        ax.text(x + w / 2, min(acc, 0.92) + 0.02, f"{int(n)}", ha="center", va="bottom", fontsize=5, rotation=90)
    ece = metrics.ece(probs, labels, n_bins=N_BINS)
    ax.set_title(f"{title}\nECE {100 * ece:.2f}%  (n = {labels.size})", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("confidence", fontsize=7)
    ax.set_ylabel("accuracy", fontsize=7)
    ax.tick_params(labelsize=6)


def reliability_grid(panels: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], path: Path, suptitle: str) -> None:
    """``panels[row][column] = (probs, labels)``; one reliability diagram per cell."""
    rows = list(panels)
    cols = list(panels[rows[0]])
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.2 * len(cols), 3.0 * len(rows)), squeeze=False)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            probs, labels = panels[r][c]
            _reliability(axes[i][j], probs, labels, f"{r} — {c}")
    axes[0][0].legend(fontsize=6, loc="upper left")
    fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ece_vs_gamma(series: dict[str, dict[float, np.ndarray]], flsd: dict[str, np.ndarray], path: Path) -> None:
    """Mean test ECE ± 95% CI over seeds against the training γ, per calibration stage; FLSD-53 at the right."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    gammas = sorted(next(iter(series.values())))
    x_flsd = max(gammas) + 1.0
    for k, (stage, by_gamma) in enumerate(series.items()):
        offset = (k - 1) * 0.08
        cis = [mean_ci(100 * by_gamma[g]) for g in gammas]
        line = ax.errorbar(
            np.array(gammas) + offset,
            [c.mean for c in cis],
            yerr=[c.half_width for c in cis],
            marker="o",
            capsize=3,
            label=stage,
        )
        ci = mean_ci(100 * flsd[stage])
        ax.errorbar(
            [x_flsd + offset], [ci.mean], yerr=[ci.half_width], marker="s", capsize=3, color=line[0].get_color()
        )
    ax.set_xticks([*gammas, x_flsd], [*(f"{g:g}" for g in gammas), "FLSD-53"])
    ax.set_xlabel("training loss γ (0 = cross-entropy)")
    ax.set_ylabel("test ECE (%), 15 bins")
    ax.set_title("MNIST-1D CNN: ECE against γ (mean ± 95% CI over seeds)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
