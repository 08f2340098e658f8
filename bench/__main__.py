"""``python -m bench`` lists the benchmarks; ``python -m bench NAME [--its-options …]`` runs one, ``all``
runs every one with its defaults.

Each benchmark is a module ``bench/<name>.py`` with a ``main()`` that prints a table of medians and ratios
against a baseline measured in the same run (never in unit tests: timing belongs here)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

HERE = Path(__file__).parent
# servers the benchmarks start, and helpers: not benchmarks
SKIP = {"__main__", "common", "baseline_app", "baseline_asgi", "faults_common", "faults_load", "faults_postgres"}
# Not part of `all`: outage stops the PostgreSQL server the whole machine shares; run it by name only.
NOT_IN_ALL = {"outage"}


def available() -> dict[str, str]:
    out = {}
    for info in pkgutil.iter_modules([str(HERE)]):
        if info.ispkg or info.name in SKIP or info.name.startswith("_"):  # packages hold a benchmark's parts
            continue
        text = (HERE / f"{info.name}.py").read_text()
        doc = text.split('"""')[1].strip().splitlines()[0] if text.startswith('"""') else ""
        out[info.name] = doc
    return out


def main(argv: list[str]) -> int:
    benches = available()
    if not argv:
        print("usage: python -m bench NAME [options] | all\n")
        for name, doc in sorted(benches.items()):
            print(f"  {name:22s} {doc}")
        return 0
    runs: list[tuple[str, list[str]]]
    if argv == ["all"]:
        runs = [(name, []) for name in sorted(benches) if name not in NOT_IN_ALL]
    else:
        runs = [(argv[0], argv[1:])]
    status = 0
    for name, options in runs:
        if name not in benches:
            print(f"unknown benchmark {name!r}; choose from {sorted(benches)}")
            return 2
        print(f"\n=== bench.{name} ===", flush=True)
        module = importlib.import_module(f"bench.{name}")
        status = status or int(module.main(options) or 0)  # its own argparse sees only its options
    return status  # a benchmark that could not run (e.g. wrk missing) fails the command


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
