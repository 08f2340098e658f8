"""Calibrator fit and predict times vs netcal: ``python -m bench.calibration_fit [--repeats 3] [--quick]``.

Fits temperature, focal_temperature, vector, dirichlet and isotonic on synthetic overconfident logits
(50,000×10 and 20,000×100; labels drawn from softmax(z/1.5)), and netcal's TemperatureScaling on the
same data in the same run. Prints median fit seconds, the speed-up over netcal (netcal time / ours) and
held-out NLL, then ``predict_proba`` µs per row at batch 1 and 64 (K = 10).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable

import numpy as np

from service.calibration import make_calibrator, metrics

METHODS = ("temperature", "focal_temperature", "vector", "dirichlet", "isotonic")
SIZES = ((50_000, 10), (20_000, 100))


def synthetic(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits z ~ 3·N(0, 1) and labels drawn from softmax(z / 1.5): a model overconfident by T = 1.5."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 3.0
    p = np.exp(z / 1.5 - (z / 1.5).max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = np.minimum((p.cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1), k - 1)
    return z, y


def median_seconds(repeats: int, fn: Callable[..., object], *args: object) -> float:
    """Median wall time of ``fn(*args)`` over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def repeat_call(loops: int, fn: Callable[..., object], *args: object) -> None:
    for _ in range(loops):
        fn(*args)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def netcal_ts() -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from netcal.scaling import TemperatureScaling

    return TemperatureScaling()


def fit_table(repeats: int, sizes: tuple[tuple[int, int], ...]) -> None:
    print(f"fit time, median of {repeats} (dirichlet at K=100: 1 run); speed-up = netcal TS time / ours")
    print(f"{'data':>12} {'method':>20} {'fit s':>9} {'speed-up':>9} {'held-out NLL':>13}")
    for n, k in sizes:
        z, y = synthetic(n, k, seed=0)
        z_test, y_test = synthetic(20_000, k, seed=1)
        probs, probs_test = softmax(z), softmax(z_test)
        baseline = netcal_ts()
        base_s = median_seconds(repeats, baseline.fit, probs, y)  # type: ignore[attr-defined]
        base_nll = metrics.nll(np.asarray(baseline.transform(probs_test), dtype=np.float64), y_test)  # type: ignore[attr-defined]
        data = f"{n}x{k}"
        print(f"{data:>12} {'netcal TS (baseline)':>20} {base_s:9.3f} {1.0:9.2f} {base_nll:13.4f}")
        print(f"{data:>12} {'identity':>20} {'':>9} {'':>9} {metrics.nll(probs_test, y_test):13.4f}")
        for method in METHODS:
            runs = 1 if (method == "dirichlet" and k > 50) else repeats
            cal = make_calibrator(method)
            seconds = median_seconds(runs, cal.fit, z, y)
            nll = metrics.nll(cal.predict_proba(z_test), y_test)
            print(f"{data:>12} {method:>20} {seconds:9.3f} {base_s / seconds:9.2f} {nll:13.4f}")
        sys.stdout.flush()


def predict_table() -> None:
    z, y = synthetic(5000, 10, seed=2)
    print("\npredict_proba µs per row, K=10 (median of 7 runs of ≥0.2 s each)")
    print(f"{'method':>20} {'batch 1':>10} {'batch 64':>10}")
    for method in ("identity", *METHODS):
        cal = make_calibrator(method).fit(z, y)
        cells = []
        for batch in (1, 64):
            rows = z[:batch].copy()
            loops = max(1, int(0.2 / max(median_seconds(5, cal.predict_proba, rows), 1e-7)))
            cells.append(median_seconds(7, repeat_call, loops, cal.predict_proba, rows) / loops / batch * 1e6)
        print(f"{method:>20} {cells[0]:10.2f} {cells[1]:10.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="only 50,000×10 (skips the slow K=100 fits)")
    args = parser.parse_args(argv if argv is not None else [])
    fit_table(args.repeats, SIZES[:1] if args.quick else SIZES)
    predict_table()


if __name__ == "__main__":
    main(sys.argv[1:])
