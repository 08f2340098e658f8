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
SKIP = {"__main__", "common", "baseline_app"}


def available() -> dict[str, str]:
    out = {}
    for info in pkgutil.iter_modules([str(HERE)]):
        if info.name in SKIP or info.name.startswith("_"):
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
    runs = [(name, []) for name in sorted(benches)] if argv == ["all"] else [(argv[0], argv[1:])]
    for name, options in runs:
        if name not in benches:
            print(f"unknown benchmark {name!r}; choose from {sorted(benches)}")
            return 2
        print(f"\n=== bench.{name} ===", flush=True)
        module = importlib.import_module(f"bench.{name}")
        module.main(options)  # each benchmark's own argparse sees only its options
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
