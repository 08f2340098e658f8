"""bench/serving.py: which targets a command line measures, and that a run that cannot start fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.serving import parse_args, pick_targets

ROOT = Path(__file__).resolve().parents[2]


def keys(*argv: str) -> list[str]:
    return [t.key for t in pick_targets(parse_args(list(argv)))]


def test_default_targets_are_issue_11s_list() -> None:
    assert keys() == ["a", "b", "c", "d", "e", "f-json", "f-binary", "e-pg", "f-json-pg", "f-binary-pg",
                      "f-json-2w", "e-nometrics", "e-single"]


def test_no_peers_drops_mlserver_and_compare_tree_adds_g() -> None:
    assert keys("--no-peers", "--targets", "a,c,d,e") == ["a", "e"]
    assert keys("--targets", "b", "--compare-tree", "/elsewhere") == ["b", "g-v1", "g-json"]


def test_unknown_target_is_refused() -> None:
    with pytest.raises(SystemExit, match="unknown targets \\['zz'\\]"):
        keys("--targets", "a,zz")


def test_nothing_to_measure_exits_2_through_the_runner() -> None:
    out = subprocess.run([sys.executable, "-m", "bench", "serving", "--targets", "c", "--no-peers"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no targets left to measure" in out.stderr
