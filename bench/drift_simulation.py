"""Drift simulation: detection delay and false alarms of our drift rules vs a naive ECE threshold.

The world (semi-synthetic, so that "calibrated" holds by construction): inputs are real digits rows
(validation + test split of the demo model), their logits come from the real ONNX model, the served
probabilities from its real temperature calibrator, and each label is drawn from those calibrated
probabilities — the model is then perfectly calibrated until the change point. Regimes after it:

  scale2        the model's logits ×2 (labels still from the original calibrated probabilities)
  prior         class-prior shift: classes 1, 8, 9 five times likelier (label shift: P(x|y) kept, rows
                re-weighted and labels drawn from p(y|x)·w_y renormalised — the served p is now stale)
  scale2+prior  both

Monitoring as the service does it, per label count instead of clock time: the reference is the first
K = 6 windows of W labels after activation; then after every S labels the last W labels are judged:
  ours-ci     n ≥ n_min and ECE's lower 95% bound > the reference's upper 95% bound resampled at n labels
  ours-sigma  n ≥ n_min and ECE > mean + 3σ of the K reference windows' ECEs (NannyML)
  ours-gap    n ≥ n_min and |gap − reference gap| > 3 SE (gap = mean confidence − accuracy)
  label-free  PSI ≥ 0.25 or KS p < 0.01 with D ≥ 0.1 on the window's confidences (no labels used)
  naive τ     ECE > τ on the window, no sample-size awareness
Every rule calls the same functions the service uses (service.monitoring.{reference,drift,shift}).

Then (bench/_drift_per_day.py) the question that matters under continuous monitoring: false alarms per DAY
at a realistic label rate (window rules once a minute over the last hour; the confidence sequence after
every label), and labels to detection of the anytime-valid confidence sequence (cs) and predictions to
detection of the label-shift check (EM prior, no labels).

    python -m bench.drift_simulation [--runs 100] [--model-dir models/digits/1] [--fa-days 10]
        [--labels-per-day 10000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from service.calibration import calibrator_from_dict, streaming
from service.monitoring import drift, shift
from service.monitoring.reference import Reference
from service.monitoring.report import ece_interval
from service.monitoring.state import WindowState

W, S, K, N_MIN, N_BINS, N_BOOT = 500, 50, 6, 200, 15, 200
HORIZON = 2000  # labels after the change point that a run watches
NAIVE = (0.02, 0.03, 0.05)
SHIFTED_CLASSES, SHIFT_WEIGHT = (1, 8, 9), 5.0
T_REF, T_NOW = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)


def ensure_model(model_dir: Path | None) -> Path:
    """``model_dir`` if it holds a model, else the digits demo model trained (seed 0) into a temp dir."""
    if model_dir is not None and (model_dir / "model.onnx").exists():
        return model_dir
    from service.training.pipeline import train_and_export

    root = Path(tempfile.mkdtemp(prefix="calibserve-bench-"))
    print(f"training the digits demo model into {root} (seed 0, 40 epochs) …", flush=True)
    return train_and_export(dataset="digits", loss="flsd53", name="digits", version=1, repository=root,
                            calibrator="temperature", curvature=False, progress=False, epochs=40)


def load_model(model_dir: Path | None) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """(logits of the validation + test rows, calibrated predict_proba) of the demo digits model."""
    from service.repository.registry import load_version
    from service.training.data import load_bundled, split_dataset

    model_dir = ensure_model(model_dir)
    loaded = load_version(model_dir)
    calibrator = calibrator_from_dict(json.loads((model_dir / "calibrator.json").read_text()))
    split = split_dataset(load_bundled("digits"), seed=0)
    rows = np.concatenate([split.X_val, split.X_test]).astype(np.float64)
    return loaded.classifier.scores(rows), calibrator.predict_proba


class World:
    def __init__(self, logits: np.ndarray, predict: Callable[[np.ndarray], np.ndarray]) -> None:
        self.logits, self.predict = logits, predict
        self.p = predict(logits)  # the calibrated truth: P(y | x)
        self.p2 = predict(2.0 * logits)
        w = np.ones(logits.shape[1])
        w[list(SHIFTED_CLASSES)] = SHIFT_WEIGHT
        q = self.p * w  # label shift: P'(y|x) ∝ P(y|x)·w_y (uniform old priors)
        self.row_weight = q.sum(axis=1) / q.sum()  # P'(x) ∝ P(x)·Σ_y P(y|x) w_y
        self.q = q / q.sum(axis=1, keepdims=True)

    def sample(self, n: int, regime: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(served probabilities (n, K), labels (n,))."""
        prior = "prior" in regime
        idx = rng.choice(len(self.p), size=n, p=self.row_weight if prior else None)
        truth = (self.q if prior else self.p)[idx]
        labels = np.minimum((truth.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1), truth.shape[1] - 1)
        return (self.p2 if "scale2" in regime else self.p)[idx], labels


def window_state(probs: np.ndarray, labels: np.ndarray, at: datetime) -> WindowState:
    conf = probs.max(axis=1)
    idx = streaming.fine_bin_index(conf)
    return WindowState(at, at, streaming.BinStats.from_predictions(probs, labels), float(len(labels)),
                       np.bincount(idx, minlength=streaming.FINE_BINS).astype(float),
                       np.bincount(idx, weights=conf, minlength=streaming.FINE_BINS))


def make_reference(world: World, rng: np.random.Generator) -> Reference:
    return Reference(windows=[window_state(*world.sample(W, "none", rng), T_REF) for _ in range(K)])


def judge(reference: Reference, probs: np.ndarray, labels: np.ndarray) -> dict[str, bool]:
    """Which rules alarm on this window (True = alarm)."""
    state = window_state(probs, labels, T_NOW)
    n, fine = state.fine.n, state.fine
    ece, lo, _ = ece_interval(fine, N_BINS, N_BOOT)
    _, ref_hi, _ = reference.ci_bound(T_NOW, n, source="activation", n_bins=N_BINS, n_min=N_MIN, n_boot=N_BOOT)
    gap, se = drift.gap_and_se(fine.count, fine.confidence_sum, fine.correct_sum)
    out = {
        "ours-ci": drift.ci_rule(n, lo, ref_hi, n_min=N_MIN, tolerance=0.0).state == "drifting",
        "ours-sigma": drift.sigma_rule(n, ece, reference.window_eces(T_NOW, n_bins=N_BINS, n_min=N_MIN),
                                       n_min=N_MIN).state == "drifting",
        "ours-gap": drift.gap_rule(n, gap, se, reference.gap(T_NOW, n_min=N_MIN), n_min=N_MIN).state == "drifting",
        "label-free": shift.confidence_shift(reference.confidence(T_NOW), state.confidence_count)["state"]
        == "warning",
    }
    out.update({f"naive ECE>{t:g}": ece > t for t in NAIVE})
    return out


def false_alarms(world: World, runs: int, windows: int, rng: np.random.Generator,
                 size: Callable[[], int] = lambda: W) -> dict[str, float]:
    """Fraction of disjoint no-drift windows that alarm (a fresh reference per run)."""
    hits: dict[str, int] = {}
    for _ in range(runs):
        reference = make_reference(world, rng)
        for _ in range(windows):
            for rule, alarm in judge(reference, *world.sample(size(), "none", rng)).items():
                hits[rule] = hits.get(rule, 0) + int(alarm)
    return {rule: h / (runs * windows) for rule, h in hits.items()}


def delays(world: World, regime: str, runs: int, rng: np.random.Generator) -> dict[str, list[float]]:
    """Labels after the change point until each rule's first alarm (inf if none within HORIZON)."""
    out: dict[str, list[float]] = {}
    for _ in range(runs):
        reference = make_reference(world, rng)
        before = world.sample(W, "none", rng)  # the window is full of calm labels at the change point
        after = world.sample(HORIZON, regime, rng)
        probs, labels = np.concatenate([before[0], after[0]]), np.concatenate([before[1], after[1]])
        first: dict[str, float] = {}
        for k in range(S, HORIZON + 1, S):
            alarms = judge(reference, probs[k:k + W], labels[k:k + W])
            for rule, alarm in alarms.items():
                if alarm and rule not in first:
                    first[rule] = float(k)
            if len(first) == len(alarms):
                break
        for rule in alarms:
            out.setdefault(rule, []).append(first.get(rule, float("inf")))
    return out


def describe(values: list[float]) -> tuple[str, str, float]:
    arr = np.asarray(values)
    done = np.isfinite(arr)
    median = float(np.quantile(arr, 0.5, method="inverted_cdf"))  # no interpolation: delays may be inf
    p90 = float(np.quantile(arr, 0.9, method="inverted_cdf"))
    return _delay_text(median), _delay_text(p90), float(np.mean(done & (arr <= 1000)))


def _delay_text(v: float) -> str:
    return "never" if not np.isfinite(v) else f"{v:.0f}"


def main(argv: list[str] | None = None) -> None:
    global W
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="runs per regime (and reference draws)")
    parser.add_argument("--fa-windows", type=int, default=20, help="no-drift windows per false-alarm run")
    parser.add_argument("--model-dir", type=Path, default=Path("models/digits/1"))
    parser.add_argument("--window", type=int, default=W, help="labels per judged window (W)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fa-days", type=int, default=10, help="calm days of continuous checking per rule")
    parser.add_argument("--labels-per-day", type=int, default=10_000)
    parser.add_argument("--cs-days", type=int, default=30, help="days of labels in the cs lifetime check")
    parser.add_argument("--em-runs", type=int, default=20, help="runs for the label-shift (EM) check")
    args = parser.parse_args(argv)
    W = args.window
    started = time.perf_counter()
    world = World(*load_model(args.model_dir))
    rng = np.random.default_rng(args.seed)
    print(f"world: {len(world.p)} digits rows; calibrated mean confidence {world.p.max(1).mean():.4f}, "
          f"after ×2 logits {world.p2.max(1).mean():.4f}; window W={W} labels judged every S={S}; "
          f"reference K={K}×W; n_min={N_MIN}; {N_BINS} bins", flush=True)

    fa = false_alarms(world, args.runs, args.fa_windows, rng)
    # time windows hold however many labels arrived: log-uniform 30 … 1,000 labels
    fa_var = false_alarms(world, args.runs, args.fa_windows, rng,
                          lambda: int(np.exp(rng.uniform(np.log(30), np.log(1000)))))
    regimes = ("scale2", "prior", "scale2+prior")
    results = {regime: delays(world, regime, args.runs, rng) for regime in regimes}
    base = "ours-ci"
    print(f"\nfalse alarms over {args.runs * args.fa_windows} disjoint no-drift windows of {W} labels (FA W) "
          f"and of 30–1,000 labels (FA n~), and labels after the change until the first alarm ({args.runs} runs "
          f"per regime; 'never' = not within {HORIZON}); ratio = median delay / ours-ci's")
    header = f"{'rule':16s} {'FA W':>7s} {'FA n~':>7s}"
    for regime in regimes:
        header += f" | {regime + ' median':>20s} {'p90':>6s} {'≤1000':>6s} {'ratio':>6s}"
    print(header)
    print("-" * len(header))
    for rule in fa:
        line = f"{rule:16s} {fa[rule]:>7.2%} {fa_var[rule]:>7.2%}"
        for regime in regimes:
            med, p90, within = describe(results[regime][rule])
            ours = float(np.quantile(results[regime][base], 0.5, method="inverted_cdf"))
            mine = float(np.quantile(results[regime][rule], 0.5, method="inverted_cdf"))
            ratio = "—" if not (np.isfinite(mine) and np.isfinite(ours) and ours > 0) else f"{mine / ours:.2f}"
            line += f" | {med:>20s} {p90:>6s} {within:>6.0%} {ratio:>6s}"
        print(line)
    print("\n(label-free uses no labels: its delay counts predictions, all of them labelled here)")
    per_day(world, args, results, regimes, rng)
    print(f"[{time.perf_counter() - started:.0f} s]")


def per_day(world: World, args: argparse.Namespace, results: dict[str, dict[str, list[float]]],
            regimes: tuple[str, ...], rng: np.random.Generator) -> None:
    """The per-day false-alarm table (old rules vs the confidence sequence) and the new rules' delays."""
    from bench import _drift_per_day as pd

    fa = pd.false_alarm_days(world, args.fa_days, args.labels_per_day, rng)
    life = pd.cs_lifetime(world, args.runs, args.cs_days, args.labels_per_day, rng)
    print(f"\nfalse alarms per DAY of continuous checking: {args.labels_per_day:,} labels/day, window rules on the "
          f"last hour once a minute ({fa['checks_per_day']:.0f} checks/day), cs after every label since "
          f"activation (α = {pd.CS_ALPHA}); {fa['days']} calm days, a fresh activation each day")
    header = f"{'rule':16s} {'days with an alarm':>19s} {'alarm episodes/day':>19s}"
    print(header + "\n" + "-" * len(header))
    for rule, (days, episodes) in fa["rules"].items():
        print(f"{rule:16s} {days:>19.0%} {episodes:>19.2f}")
    print(f"cs (new): calm runs that EVER alarm within {args.cs_days} days ({args.cs_days * args.labels_per_day:,} "
          f"labels, checked after each): {life:.1%} of {args.runs} (guarantee ≤ {pd.CS_ALPHA:.0%})")
    calm = K * W + W  # the same labelled history as the window rules had at the change point
    em_fa = pd.em_false_alarms(world, args.em_runs * 5, W, rng)
    print(f"\nlabels (cs) or predictions (label-shift EM) after the change until the first alarm; cs covers the "
          f"{calm:,} calm labels since activation; EM judges the last {W} predictions every {S}; ratio = median / "
          f"ours-ci's. EM false alarms on calm windows: {em_fa:.1%} of {args.em_runs * 5}")
    header = f"{'rule':22s}" + "".join(f" | {r + ' median':>20s} {'p90':>6s} {'≤1000':>6s} {'ratio':>6s}"
                                       for r in regimes)
    print(header + "\n" + "-" * len(header))
    rows = {"cs (new)": {r: pd.cs_delays(world, r, args.runs, calm, 4 * HORIZON, rng) for r in regimes},
            "label-shift EM (new)": {r: pd.em_delays(world, r, args.em_runs, W, S, HORIZON, rng) for r in regimes}}
    for rule, by_regime in rows.items():
        line = f"{rule:22s}"
        for regime in regimes:
            med, p90, within = describe(by_regime[regime])
            ours = float(np.quantile(results[regime]["ours-ci"], 0.5, method="inverted_cdf"))
            mine = float(np.quantile(by_regime[regime], 0.5, method="inverted_cdf"))
            ratio = "—" if not (np.isfinite(mine) and np.isfinite(ours) and ours > 0) else f"{mine / ours:.2f}"
            line += f" | {med:>20s} {p90:>6s} {within:>6.0%} {ratio:>6s}"
        print(line)


if __name__ == "__main__":
    main()
