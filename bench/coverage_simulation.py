"""Coverage alarm simulation: labels until the conformal coverage alarm fires under label and covariate shift,
and its false-alarm rate when nothing changes.

The world (semi-synthetic, so that "calibrated" holds by construction, as in bench/drift_simulation.py): the
inputs are the digits demo model's validation + test rows, their probabilities come from the real ONNX model
and its real temperature calibrator, and each label is drawn from those probabilities. Per run, a conformal
calibrator (LAC or APS, target 0.9) is fitted on N_CAL fresh labelled draws; then a stream of labelled
predictions arrives, in one of three regimes:

  none       nothing changes
  label      label shift: classes 1, 8, 9 five times likelier (P(x|y) kept: rows re-weighted by Σ_y p(y|x)·w_y,
             labels drawn from p(y|x)·w_y renormalised — the served p and the sets are now stale)
  covariate  covariate shift: inputs drawn ∝ (1 − top probability + 0.02), i.e. hard inputs far more often;
             p(y|x) is unchanged (the model stays calibrated pointwise), but the marginal guarantee was for the
             old input mix, and hard inputs are covered less

After every S labels the last W labels are judged (n ≥ N_MIN), one-sided exact binomial test at level 0.01:
  ours      H0: coverage ≥ the fitted set's δ-floor (δ = 0.01; service.calibration.coverage_bounds)
  nominal   H0: coverage ≥ 0.9, the nominal target (ignores the spread of coverage over calibration sets)
Every rule calls the functions the service uses.

    python -m bench.coverage_simulation [--runs 200] [--model-dir models/digits/1]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.drift_simulation import load_model
from service.calibration.conformal import SplitConformal
from service.calibration.coverage_bounds import conditional_coverage_floor, shortfall_pvalue

TARGET, N_CAL, DELTA, LEVEL = 0.9, 500, 0.01, 0.01
W, S, N_MIN, HORIZON = 1000, 50, 200, 5000
SHIFTED_CLASSES, SHIFT_WEIGHT = (1, 8, 9), 5.0


class World:
    def __init__(self, p: np.ndarray) -> None:
        self.p = p  # the calibrated truth P(y | x) over the pool of inputs
        w = np.ones(p.shape[1])
        w[list(SHIFTED_CLASSES)] = SHIFT_WEIGHT
        q = p * w
        self.truth = {"none": p, "label": q / q.sum(axis=1, keepdims=True), "covariate": p}
        hard = 1.0 - p.max(axis=1) + 0.02
        self.row_weight = {"none": None, "label": q.sum(axis=1) / q.sum(), "covariate": hard / hard.sum()}

    def sample(self, n: int, regime: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(pool row indices (n,), labels (n,))."""
        idx = rng.choice(len(self.p), size=n, p=self.row_weight[regime])
        truth = self.truth[regime][idx]
        labels = np.minimum((truth.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1), truth.shape[1] - 1)
        return idx, labels

    def true_coverage(self, mask: np.ndarray, regime: str) -> float:
        weight = self.row_weight[regime]
        per_row = (mask * self.truth[regime]).sum(axis=1)
        return float(per_row.mean() if weight is None else per_row @ weight)


def check_pvalues(covered: np.ndarray, reference: float) -> tuple[np.ndarray, np.ndarray]:
    """(labels seen at each check, one-sided p-value of that check): a check every S labels on the last W,
    once there are N_MIN of them. Vectorised; the per-check test is ``shortfall_pvalue``'s (scipy binom.cdf)."""
    csum = np.concatenate([[0], np.cumsum(covered)])
    t = np.arange(S, covered.size + 1, S)
    t = t[np.minimum(t, W) >= N_MIN]
    n = np.minimum(t, W)
    p = np.array([shortfall_pvalue(int(k), int(m), reference) for k, m in zip(csum[t] - csum[t - n], n, strict=True)])
    return t, p


def first_alarm(t: np.ndarray, p: np.ndarray) -> float:
    """Labels until the first check alarms; inf if none does within the stream."""
    hit = np.flatnonzero(p < LEVEL)
    return float(t[hit[0]]) if hit.size else float("inf")


def run(world: World, score: str, runs: int, seed: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    floor = conditional_coverage_floor(N_CAL, TARGET, DELTA)
    references = {"ours": floor, "nominal": TARGET}
    rows: dict[str, dict[str, list[float]]] = {r: {"cov": [], "size": []} for r in world.truth}
    delays = {(r, rule): [] for r in world.truth for rule in references}  # type: dict[tuple[str, str], list[float]]
    checks = {rule: [0, 0] for rule in references}
    for i in range(runs):
        cal_idx, cal_y = world.sample(N_CAL, "none", rng)
        conformal = SplitConformal(score=score, seed=i).fit(world.p[cal_idx], cal_y)  # type: ignore[arg-type]
        mask = conformal.predict_set(world.p, TARGET)
        for regime in world.truth:
            idx, y = world.sample(HORIZON, regime, rng)
            covered = mask[idx, y].astype(np.int64)
            rows[regime]["cov"].append(world.true_coverage(mask, regime))
            rows[regime]["size"].append(float(mask[idx].sum(axis=1).mean()))
            for rule, ref in references.items():
                t, p = check_pvalues(covered, ref)
                delays[(regime, rule)].append(first_alarm(t, p))
                if regime == "none":
                    checks[rule][0] += int((p < LEVEL).sum())
                    checks[rule][1] += p.size
    out = []
    for regime in world.truth:
        entry: dict[str, object] = {"regime": regime, "true_coverage": float(np.mean(rows[regime]["cov"])),
                                    "coverage_p10": float(np.quantile(rows[regime]["cov"], 0.1)),
                                    "set_size": float(np.mean(rows[regime]["size"]))}
        for rule in references:
            d = np.asarray(delays[(regime, rule)])
            entry[f"{rule}_alarmed"] = float(np.isfinite(d).mean())
            entry[f"{rule}_median_labels"] = float(np.median(d[np.isfinite(d)])) if np.isfinite(d).any() else None
            if regime == "none":
                entry[f"{rule}_per_check"] = checks[rule][0] / max(checks[rule][1], 1)
        out.append(entry)
    return out


def fmt(x: object, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logits, predict = load_model(args.model_dir)
    world = World(predict(logits))
    floor = conditional_coverage_floor(N_CAL, TARGET, DELTA)
    print(f"pool {len(world.p)} inputs, target {TARGET}, n_cal {N_CAL}, δ-floor {floor:.4f} (δ = {DELTA}); "
          f"window {W} labels checked every {S}, n ≥ {N_MIN}, horizon {HORIZON}, test level {LEVEL}; "
          f"{args.runs} runs\n")
    head = (f"{'score':5s} {'regime':10s} {'true cov':>8s} {'cov p10':>8s} {'|set|':>6s} | "
            f"{'ours: alarmed':>13s} {'median labels':>13s} {'per check':>9s} | "
            f"{'nominal: alarmed':>16s} {'median labels':>13s} {'per check':>9s}")
    print(head)
    print("-" * len(head))
    for score in ("lac", "aps"):
        for e in run(world, score, args.runs, args.seed):
            print(f"{score:5s} {e['regime']:10s} {e['true_coverage']:8.4f} {e['coverage_p10']:8.4f} "
                  f"{e['set_size']:6.2f} | {e['ours_alarmed']:13.3f} {fmt(e['ours_median_labels'], '13.0f')} "
                  f"{fmt(e.get('ours_per_check'), '9.4f')} | {e['nominal_alarmed']:16.3f} "
                  f"{fmt(e['nominal_median_labels'], '13.0f')} {fmt(e.get('nominal_per_check'), '9.4f')}")
    print("\n'alarmed' = fraction of runs with an alarm within the horizon (in regime 'none': the per-run false-"
          "alarm rate over all its checks); 'per check' = fraction of checks that alarm when nothing changed.")


if __name__ == "__main__":
    main()
