"""``python -m bench NAME [options]``, the form the README gives, reaches each benchmark's own argparse
(before: each module's argparse saw ``NAME`` and rejected it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import available

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(available()))
def test_each_benchmark_takes_its_options_through_the_runner(name: str) -> None:
    out = subprocess.run([sys.executable, "-m", "bench", name, "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout and "-h, --help" in out.stdout


def test_unknown_benchmark_is_refused() -> None:
    out = subprocess.run([sys.executable, "-m", "bench", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "unknown benchmark 'nope'" in out.stdout
