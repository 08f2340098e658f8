"""Small-data reproduction of the focal-loss calibration claims; writes ``docs/training_report.md``.

    python -m experiments.calibration_report [--seeds 5] [--epochs 60] [--long-epochs 200]
                                             [--datasets digits,wine,iris]

For each dataset and training loss (CE, focal γ ∈ {1, 2, 3}, FLSD-53; CE vs AnyLoss-F1 on breast_cancer)
and each seed (the seed drives the stratified 60/20/20 split and the initialisation): test accuracy,
ECE, AdaECE and NLL before calibration, after temperature scaling (TS) and after focal temperature
scaling (FTS), both fitted on the validation split; and the top Hessian eigenvalue / trace of the
training loss and of CE on up to 512 training rows.  Mean ± std over seeds.  Two training regimes:
early stopping on the validation loss (our trainer's default), and a fixed number of epochs keeping the
last weights (closer to the papers' fixed schedules, where CE over-fits the NLL).  A program, not a test.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.special import softmax

from service.calibration import CALIBRATORS, make_calibrator, metrics
from service.training.curvature import CurvatureConfig, curvature_report
from service.training.pipeline import fit_classifier

REPORT = Path("docs/training_report.md")
ECE_BINS = 15


@dataclass(frozen=True)
class Regime:
    title: str
    epochs: int
    patience: int | None
    hidden: tuple[int, ...] = (64,)
    datasets: tuple[str, ...] | None = None  # None: every dataset asked for


@dataclass(frozen=True)
class Arm:
    label: str
    loss: str
    gamma: float | None = None


MULTICLASS_ARMS = (
    Arm("CE", "cross_entropy"),
    Arm("FL γ=1", "focal", 1.0),
    Arm("FL γ=2", "focal", 2.0),
    Arm("FL γ=3", "focal", 3.0),
    Arm("FLSD-53", "flsd53"),
)
BINARY_ARMS = (Arm("CE", "cross_entropy"), Arm("AnyLoss-F1", "anyloss_f1"))
STAGES = ("raw", "TS", "FTS")
METRICS = ("ece", "adaptive_ece", "nll")
CURVATURE_KEYS = ("hessian_top_eig_ce", "hessian_top_eig_train_loss", "hessian_trace_ce")


def _scores(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": metrics.accuracy(probs, labels),
        "ece": metrics.ece(probs, labels, n_bins=ECE_BINS),
        "adaptive_ece": metrics.adaptive_ece(probs, labels, ECE_BINS),
        "nll": metrics.nll(probs, labels),
    }


def run_once(dataset: str, arm: Arm, seed: int, regime: Regime) -> dict[str, float]:
    """One training run: test metrics per calibration stage plus curvature, as a flat dict."""
    trained = fit_classifier(
        dataset=dataset,
        loss=arm.loss,
        gamma=arm.gamma,
        seed=seed,
        epochs=regime.epochs,
        patience=regime.patience,
        hidden=regime.hidden,
        progress=False,
    )
    split = trained.split
    with torch.no_grad():
        z_val = trained.model(torch.as_tensor(split.X_val)).double().numpy()
        z_test = trained.model(torch.as_tensor(split.X_test)).double().numpy()
    row: dict[str, float] = {"kept_epoch": float(trained.result.best_epoch)}
    stage_probs = {"raw": softmax(z_test, axis=1)}
    for stage, method in (("TS", "temperature"), ("FTS", "focal_temperature")):
        if method in CALIBRATORS:
            calibrator = make_calibrator(method).fit(z_val, split.y_val)
            stage_probs[stage] = calibrator.predict_proba(z_test)
            params = calibrator.to_dict()["params"]
            for key in ("temperature", "gamma"):
                if key in params:
                    row[f"{stage}_{key}"] = float(params[key])
    for stage, probs in stage_probs.items():
        for key, value in _scores(probs, split.y_test).items():
            row[f"{stage}_{key}"] = value
    curvature = curvature_report(
        trained.model, trained.objective, split.X_train, split.y_train, CurvatureConfig(seed=seed)
    )
    row.update({k: curvature[k] for k in CURVATURE_KEYS})
    return row


def _cell(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    if not values:
        return "n/a"
    arr = np.asarray(values) * scale
    return f"{arr.mean():.{digits}f} ± {arr.std(ddof=1) if arr.size > 1 else 0.0:.{digits}f}"


Results = dict[str, list[dict[str, float]]]  # arm label -> one row per seed


def _column(rows: list[dict[str, float]], key: str) -> list[float]:
    return [r[key] for r in rows if key in r]


def metrics_table(results: Results) -> str:
    head = ["loss", "test acc %"] + [f"{m} {s}" for m in ("ECE %", "AdaECE %", "NLL") for s in STAGES]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, rows in results.items():
        cells = [label, _cell(_column(rows, "raw_accuracy"), 100, 1)]
        for metric in METRICS:
            scale, digits = (1.0, 3) if metric == "nll" else (100.0, 2)
            cells += [_cell(_column(rows, f"{s}_{metric}"), scale, digits) for s in STAGES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curvature_table(results: Results) -> str:
    head = ["loss", "λ_max(H_CE)", "λ_max(H_train loss)", "tr(H_CE)", "TS T", "FTS γ", "kept epoch"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, rows in results.items():
        cells = [label] + [_cell(_column(rows, k), 1, 3) for k in CURVATURE_KEYS]
        cells += [
            _cell(_column(rows, "TS_temperature")),
            _cell(_column(rows, "FTS_gamma")),
            _cell(_column(rows, "kept_epoch"), 1, 0),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _wins(a: list[float], b: list[float], better: Callable[[float, float], bool]) -> str:
    n = min(len(a), len(b))
    return f"{sum(better(x, y) for x, y in zip(a[:n], b[:n], strict=True))}/{n}"


def claims(results: Results) -> list[str]:
    """Paired per-seed checks of the published directions, stated with their counts."""
    lower = float.__lt__
    out: list[str] = []
    ce = results.get("CE", [])
    for label, rows in results.items():
        if label == "CE":
            continue
        raw_ece, raw_nll, ts_ece = (
            _wins(_column(rows, key), _column(ce, key), lower) for key in ("raw_ece", "raw_nll", "TS_ece")
        )
        out.append(
            f"- {label} vs CE: raw ECE lower in {raw_ece} seeds; raw NLL lower in {raw_nll}; "
            f"ECE after TS lower in {ts_ece}."
        )
    for label, rows in results.items():
        if _column(rows, "FTS_nll"):
            nll, ece, ada = (
                _wins(_column(rows, f"FTS_{m}"), _column(rows, f"TS_{m}"), lower)
                for m in ("nll", "ece", "adaptive_ece")
            )
            out.append(f"- FTS vs TS on {label}: NLL lower in {nll} seeds, ECE lower in {ece}, AdaECE lower in {ada}.")
    gamma_arms = [a for a in ("CE", "FL γ=1", "FL γ=2", "FL γ=3") if a in results]
    if len(gamma_arms) > 1:
        for key in ("hessian_top_eig_ce", "hessian_top_eig_train_loss"):
            means = [float(np.mean(_column(results[a], key))) for a in gamma_arms]
            per_seed = [
                all(x > y for x, y in zip(seq, seq[1:], strict=False))
                for seq in zip(*(_column(results[a], key) for a in gamma_arms), strict=False)
            ]
            out.append(
                f"- {key} over γ = 0,1,2,3: means {', '.join(f'{m:.3g}' for m in means)}; strictly falling "
                f"in {sum(per_seed)}/{len(per_seed)} seeds."
            )
    return out


def run_regime(regime: Regime, plan: list[tuple[str, tuple[Arm, ...]]], seeds: int, started: float) -> list[str]:
    sections = [f"## {regime.title}\n"]
    for dataset, arms in plan:
        if regime.datasets is not None and dataset not in regime.datasets:
            continue
        results: Results = {}
        for arm in arms:
            results[arm.label] = [run_once(dataset, arm, seed, regime) for seed in range(seeds)]
            print(f"{regime.epochs:>4} {dataset:>13} {arm.label:<11} {time.perf_counter() - started:6.1f}s", flush=True)
        sections += [
            f"### {dataset}\n",
            "Test-set metrics (ECE and AdaECE in %, 15 bins):\n",
            metrics_table(results) + "\n",
            "Curvature at the trained weights (mean loss over up to 512 training rows), fitted calibrators:\n",
            curvature_table(results) + "\n",
            "Paired per-seed checks:\n",
            "\n".join(claims(results)) + "\n",
        ]
    return sections


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.calibration_report", description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=60, help="regime A: at most this many, early stopping")
    parser.add_argument("--long-epochs", type=int, default=200, help="regimes B, C: exactly this many (0 skips)")
    parser.add_argument("--datasets", default="digits,wine,iris", help="multiclass datasets, comma-separated")
    parser.add_argument("--no-binary", action="store_true", help="skip breast_cancer CE vs AnyLoss-F1")
    parser.add_argument("--output", type=Path, default=REPORT)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    plan = [(d, MULTICLASS_ARMS) for d in args.datasets.split(",") if d]
    if not args.no_binary:
        plan.append(("breast_cancer", BINARY_ARMS))
    regimes = [Regime(f"A. Early stopping: MLP 64, up to {args.epochs} epochs, patience 10", args.epochs, 10)]
    if args.long_epochs:
        regimes += [
            Regime(f"B. Fixed schedule: MLP 64, {args.long_epochs} epochs, last epoch kept", args.long_epochs, None),
            Regime(
                f"C. Over-parameterised: MLP 256-256, {args.long_epochs} epochs, last epoch kept (digits only)",
                args.long_epochs,
                None,
                hidden=(256, 256),
                datasets=("digits",),
            ),
        ]
    sections: list[str] = []
    for regime in regimes:
        sections += run_regime(regime, plan, args.seeds, started)
    elapsed = time.perf_counter() - started
    command = f"python -m experiments.calibration_report --seeds {args.seeds} --epochs {args.epochs} "
    command += f"--long-epochs {args.long_epochs}"
    header = [
        "# Training report: focal loss, calibration and curvature on small data\n",
        "> The study at scale (MNIST-1D CNN trained to over-fitting, gradient-boosted trees, 10 seeds, paired "
        "tests) is [science.md](science.md); it supersedes the verdicts below where they differ.\n",
        f"Generated by `{command}` in {elapsed:.0f}s on {platform.machine()} "
        f"({platform.python_implementation()} {platform.python_version()}, torch {torch.__version__}, "
        "training single-threaded). Each seed redraws the stratified 60/20/20 split and the initialisation. "
        "Adam lr 1e-3, batch 64 (stratified), mean-reduced losses, no weight decay. TS and FTS are "
        "fitted on the validation split by NLL (`service.calibration`) and evaluated on the test split. "
        "Mean ± sample std over seeds.\n",
    ]
    if "focal_temperature" not in CALIBRATORS:
        header.append("FTS was not available in `service.calibration` when this ran: its columns read n/a.\n")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(header + [READING] + sections))
    print(f"wrote {args.output} in {elapsed:.0f}s")
    return 0


READING = """## Reading (written after the run recorded below; the per-seed counts are regenerated)

Scale first: test splits hold 30 (iris), 36 (wine), 114 (breast_cancer) and 360 (digits) rows and
validation splits the same, so one misclassified row moves ECE by 3, 3, 1 and 0.3 points respectively.
Only differences that hold in most seeds are worth reading; the "n/5" counts are paired by seed.

1. **"Focal loss lowers ECE before temperature scaling" (Mukhoti et al. 2020): not supported with a
   small network; supported for small γ once cross-entropy is over-confident.** With the 64-unit MLP
   (regimes A and B) CE is already close to calibrated (digits raw ECE under 2%, fitted T 1.0-1.5) and
   focal loss makes every dataset *under*-confident: raw ECE and NLL grow with γ, the fitted T falls
   below 1, and no focal arm beats CE on raw ECE in more than one seed of five. In the over-parameterised
   regime C, CE over-fits the NLL (T ≈ 2) and the published direction appears: FL γ=1 lowers raw NLL in
   5/5 seeds and raw ECE in 4/5, γ=2 in 4/5 and 3/5. γ=3 and FLSD-53, the paper's headline settings,
   overshoot into under-confidence (T ≈ 0.8, raw ECE higher than CE in every seed). The premise of the
   claim, an over-confident CE model, is a property of large networks trained to zero training loss; the
   best γ shrinks with how over-confident CE is.
2. **After TS the losses are indistinguishable.** ECE after TS is within about one standard deviation
   across CE, FL-γ and FLSD-53 on every dataset; focal training neither helps nor hurts once T is fitted.
   FLSD-53 equals FL-3 on wine and iris: with 3 classes p_y starts near 1/3 > 0.2, so γ = 5 never fires.
3. **"Focal temperature scaling beats TS" (Komisarenko & Kull 2024): not resolved at this size.** FTS
   lowers test NLL in at most three seeds of five in any arm; on digits it lowers AdaECE in most seeds
   (up to 5/5) but by a few tenths of a point, elsewhere the counts are mixed. Its fitted γ jumps between
   grid ends across seeds (the large ± on "FTS γ"), so the validation objective is nearly flat in γ with
   a few hundred rows. Not contradicted, not supported.
4. **"λ_max falls as γ grows" (Kimura & Naganuma 2024): depends on which Hessian.** The top eigenvalue
   of the *training* loss's Hessian falls with γ in the means everywhere except iris under early
   stopping, strictly in every seed on digits (A, B) and wine (B). The top eigenvalue and trace of the
   *cross-entropy* Hessian at the same weights rise with γ in every dataset and regime: focal-trained
   networks are less confident, and CE's curvature diag(q) − qqᵀ is largest for unconfident predictions.
   So the solutions are flat for the focal objective, whose surface is flattened for confident samples
   by construction (papers.md §4.2 warns that Hessians of different losses mix scale with geometry),
   not flatter in CE. "ECE is lowest at an intermediate curvature" is visible only in regime C (best raw
   ECE at γ=1, between CE and γ=3 in tr(H_CE)); in A and B raw ECE and tr(H_CE) rise together.
5. **AnyLoss-F1 (breast_cancer) classifies as well as CE but its probabilities are not calibrated.**
   The amplifier's gradient vanishes once |p − 0.5| > 0.15, so training stops pushing p past the
   threshold region: raw ECE is 20-30% and NLL two to six times CE's, with a fitted T far below 1.
   Temperature scaling repairs it to CE's level, which is why every served model gets a calibrator.
6. **Caveats.** On wine and iris the validation split is often separable; TS then
   drives T to its lower bound (0.01) and a single test error costs a huge NLL, hence means such as
   "NLL TS 0.9 ± 1.6" on iris. Treat TS/FTS NLL on those two datasets as unreliable. Iris in regime A
   is also under-trained (about 88% test accuracy: 60 epochs are only 120 Adam steps on 90 rows).
"""


if __name__ == "__main__":
    raise SystemExit(main())
