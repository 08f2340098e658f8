"""Smoke test of ``python -m experiments.science --quick``: the same CLI path and report, on an even
smaller configuration so that CI on a loaded 2-core machine stays well under a minute or two."""

from dataclasses import replace

import experiments.science.__main__ as science
from experiments.science.config import QUICK

TINY = replace(
    QUICK,
    seeds=(0, 1),
    mnist_samples=1_000,
    focal_epochs=2,
    curvature_probe=64,
    curvature_iters=3,
    anyloss_samples=1_500,
    anyloss_epochs=2,
    tabular_samples=800,
    forest_trees=5,
)

SECTIONS = (
    "## Verdicts",
    "## 1. Focal loss on MNIST-1D (Mukhoti et al. 2020)",
    "## 2. Focal temperature scaling (Komisarenko & Kull 2024)",
    "## 3. Curvature and calibration (Kimura & Naganuma 2024)",
    "## 4. AnyLoss on imbalanced binary tasks (Han et al. 2024)",
    "## 5. Tabular models: HistGradientBoosting and RandomForest",
    "## 6. Evidence behind the defaults",
    "## Reproduce",
)


def test_quick_mode_writes_the_full_reports_shape(tmp_path, monkeypatch):
    monkeypatch.setattr(science, "QUICK", TINY)
    monkeypatch.chdir(tmp_path)  # the re-render cache goes to ./build
    out = tmp_path / "science.md"
    assert science.main(["--quick", "--jobs", "1", "--out", str(out)]) == 0
    text = out.read_text()
    positions = [text.index(s) for s in SECTIONS]
    assert positions == sorted(positions)
    assert "QUICK SMOKE RUN" in text and "Seeds 0–1 (2)" in text
    for picture in ("reliability_mnist1d.png", "reliability_gbm.png", "ece_vs_gamma.png"):
        path = tmp_path / "science" / picture
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"science/{picture}" in text
    for claim in (
        "Mukhoti: focal losses lower raw ECE",
        "FTS has lower held-out NLL",
        "λ_max falls as γ grows",
        "AnyLoss (MNIST-1D 0-vs-rest 1%)",
        "HistGradientBoosting on synthetic",
    ):
        assert claim in text
    # re-rendering from the cached raw results reproduces the report, and says that it was re-rendered
    again = tmp_path / "again" / "science.md"
    assert science.main(["--render-from", "build/science-quick.pkl", "--out", str(again)]) == 0
    command = "python -m experiments.science --render-from build/science-quick.pkl"
    note = f" Tables rendered from that run's raw results by `{command}`."
    assert note in again.read_text()
    assert again.read_text().replace(note, "").replace(str(again), str(out)) == text
