"""Cost of `coverage` and `decision` on the predict core, batch 1 and 64, as ratios to plain predict.

In-process, on the digits demo model as shipped (onnxruntime, one intra-op thread, its temperature
calibrator): "plain" is what every predict does before rendering — ONNX scores, calibrated probabilities, top
label and confidence. The variants add, per request block, what the predictor adds for the new request
fields: the conformal set at coverage 0.9 (rendered as class names), abstention below 0.7, the Bayes action
under a 3-action cost matrix (rendered with its expected cost), all three, and the ``prediction_decisions``
rows the prediction log then carries. HTTP parsing/rendering, the prediction log and metrics are left out,
so the ratios are upper bounds on what a client sees end to end (a /v1 request costs ~100s of µs on top).

    python -m bench.decision_overhead [--model-dir models/digits/1] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.drift_simulation import ensure_model
from service.calibration import calibrator_from_dict
from service.calibration.conformal import conformal_from_dict
from service.calibration.decide import action_names, decide, set_labels
from service.calibration.decisions import check_cost_matrix
from service.db.decision_stats import served_rows

BATCHES = (1, 64)


def loops_for(fn: Callable[[], object], budget_s: float) -> int:
    fn()
    t0 = time.perf_counter()
    fn()
    return max(10, int(budget_s / max(time.perf_counter() - t0, 1e-7)))


def interleaved_medians(fns: dict[str, Callable[[], object]], repeat: int, budget_s: float = 0.1) -> dict[str, float]:
    """µs per call: each round times every variant once (~``budget_s`` each), so a noisy neighbour on the
    shared machine hits all variants alike; the median over ``repeat`` rounds."""
    loops = {name: loops_for(fn, budget_s) for name, fn in fns.items()}
    rounds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(loops[name]):
                fn()
            rounds[name].append((time.perf_counter() - t0) / loops[name] * 1e6)
    return {name: statistics.median(r) for name, r in rounds.items()}


def main(argv: list[str] | None = None) -> None:
    from service.repository.registry import load_version

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args(argv)
    model_dir = ensure_model(args.model_dir)
    loaded = load_version(model_dir)
    classes = list(loaded.card.classes)
    k = len(classes)
    calibrator = calibrator_from_dict(json.loads((model_dir / "calibrator.json").read_text()))
    conformal = conformal_from_dict(json.loads((model_dir / "conformal.json").read_text()))
    cost = check_cost_matrix(np.vstack([1.0 - np.eye(k), np.full((1, k), 0.2)]), k)  # K actions + "review"
    actions = [*classes, "review"]
    rng = np.random.default_rng(0)

    def plain(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        probs = calibrator.predict_proba(loaded.classifier.scores(x))
        return probs, probs.argmax(axis=1), probs.max(axis=1)

    def with_fields(x: np.ndarray, *, coverage: float | None, min_conf: float | None,
                    costs: np.ndarray | None, log: bool = False) -> object:
        probs, top, conf = plain(x)
        d = decide(probs, conformal=conformal, coverage=coverage, min_confidence=min_conf, cost=costs)
        out: list[object] = [top, conf]
        if d.set_mask is not None:
            out.append(set_labels(d.set_mask, classes))
        if d.actions is not None:
            out.append(action_names(d.actions, actions if costs is not None else classes))
        if d.expected_cost is not None:
            out.append(d.expected_cost.tolist())
        if log:
            ids = [str(i) for i in range(x.shape[0])]
            out.append(served_rows(ids, set_mask=d.set_mask, actions=d.actions, expected_cost=d.expected_cost,
                                   conformal_version=1, coverage=coverage, cost_matrix_version=1,
                                   min_confidence=min_conf))
        return out

    variants: dict[str, Callable[[np.ndarray], object]] = {
        "plain predict": plain,
        "+ coverage 0.9": lambda x: with_fields(x, coverage=0.9, min_conf=None, costs=None),
        "+ min_confidence 0.7": lambda x: with_fields(x, coverage=None, min_conf=0.7, costs=None),
        "+ cost-matrix decision": lambda x: with_fields(x, coverage=None, min_conf=None, costs=cost),
        "+ all three": lambda x: with_fields(x, coverage=0.9, min_conf=0.7, costs=cost),
        "+ all three + log rows": lambda x: with_fields(x, coverage=0.9, min_conf=0.7, costs=cost, log=True),
    }
    print(f"digits MLP ({k} classes, {loaded.classifier.n_features} features), conformal "
          f"{conformal.score} on {conformal.n_fit} rows; median of {args.repeat} rounds, µs per request block\n")
    print(f"{'variant':26s}" + "".join(f"{f'batch {b} µs':>14s}{'ratio':>8s}" for b in BATCHES))
    results = {b: {} for b in BATCHES}  # type: dict[int, dict[str, float]]
    for b in BATCHES:
        x = rng.normal(size=(b, loaded.classifier.n_features)) * 4 + 8
        calls = {name: (lambda fn=fn, x=x: fn(x)) for name, fn in variants.items()}
        results[b] = interleaved_medians(calls, args.repeat)  # type: ignore[arg-type]
    for name in variants:
        cells = "".join(f"{results[b][name]:14.1f}{results[b][name] / results[b]['plain predict']:8.2f}"
                        for b in BATCHES)
        print(f"{name:26s}{cells}")


if __name__ == "__main__":
    main()
