"""``python -m experiments.science [--quick] [--jobs 2] [--out docs/science.md]``

Runs the four studies (MNIST-1D focal / FTS / curvature, AnyLoss, tabular) over the seeds, then writes
the report, its pictures (``<out without .md>/``) and ``results.json`` with every per-run number.
The quick mode (CI smoke test) runs the same code and writes the same sections on fewer seeds, rows
and epochs; its default output is ``build/science-quick.md`` so it never overwrites the full report.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import os
import pickle
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from experiments.science.config import FULL, QUICK, Config
from experiments.science.focal import focal_arms, focal_run
from experiments.science.imbalanced import TASKS, imbalanced_run
from experiments.science.report import write_report
from experiments.science.tabular import tabular_run, tabular_tasks


def _jobs(cfg: Config) -> list[tuple[str, Callable[..., Any], tuple[Any, ...]]]:
    """(study, function, args): the slowest (focal CNN) first so the pool stays busy to the end."""
    jobs: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []
    jobs += [("focal", focal_run, (cfg, arm, s)) for s in cfg.seeds for arm in focal_arms(cfg)]
    jobs += [("anyloss", imbalanced_run, (cfg, task, s)) for s in cfg.seeds for task in TASKS]
    jobs += [("tabular", tabular_run, (cfg, task, s)) for s in cfg.seeds for task in tabular_tasks()]
    return jobs


def _timed(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, float]:
    started = time.perf_counter()
    return fn(*args), time.perf_counter() - started


def run(cfg: Config, jobs: int) -> tuple[dict[str, list[dict[str, Any]]], dict[str, float]]:
    results: dict[str, list[dict[str, Any]]] = {"focal": [], "anyloss": [], "tabular": []}
    seconds: dict[str, float] = {"focal": 0.0, "anyloss": 0.0, "tabular": 0.0}
    work = _jobs(cfg)
    # spawn, not fork: a forked child of a process that already ran OpenMP (torch, scikit-learn's
    # HistGradientBoosting) can deadlock inside OpenMP — seen under the test suite
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [(study, pool.submit(_timed, fn, args)) for study, fn, args in work]
        for i, (study, future) in enumerate(futures, 1):
            out, took = future.result()
            results[study] += out if isinstance(out, list) else [out]
            seconds[study] += took
            print(f"[{i}/{len(futures)}] {study} {took:.1f}s", file=sys.stderr, flush=True)
    return results, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.science", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke size: 3 seeds, small data, few epochs")
    parser.add_argument("--seeds", type=int, default=None, help="override the number of seeds")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (1 torch thread each)")
    parser.add_argument("--out", type=Path, default=None, help="report path (default: docs/science.md)")
    parser.add_argument(
        "--render-from",
        type=Path,
        default=None,
        help="re-render the report from a run's pickle (build/science-<mode>.pkl) without re-running it",
    )
    args = parser.parse_args(argv)
    if args.render_from is not None:
        with args.render_from.open("rb") as fh:
            results, meta = pickle.load(fh)
        meta["rendered_by"] = f"python -m experiments.science --render-from {args.render_from}"
        out = args.out or Path("build/science-quick.md" if meta["mode"] == "quick" else "docs/science.md")
        write_report(out, results, meta)
        print(f"rendered {out} from {args.render_from}", file=sys.stderr)
        return 0
    cfg = QUICK if args.quick else FULL
    if args.seeds is not None:
        cfg = cfg.with_seeds(args.seeds)
    out: Path = args.out or Path("build/science-quick.md" if args.quick else "docs/science.md")
    started = time.perf_counter()
    results, seconds = run(cfg, args.jobs)
    wall = time.perf_counter() - started
    command = (
        "python -m experiments.science"
        + (" --quick" if args.quick else "")
        + (f" --seeds {args.seeds}" if args.seeds is not None else "")
        + f" --jobs {args.jobs}"
    )
    meta = {
        "command": command,
        "mode": cfg.mode,
        "seeds": list(cfg.seeds),
        "wall_seconds": wall,
        "study_cpu_seconds": seconds,
        "jobs": args.jobs,
        "machine": f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "config": cfg.__dict__,
    }
    cache = Path("build") / f"science-{cfg.mode}.pkl"
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("wb") as fh:  # the raw results incl. test probabilities, to re-render without re-running
        pickle.dump((copy.deepcopy(results), meta), fh)
    write_report(out, results, meta)
    print(f"wrote {out} in {wall:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
