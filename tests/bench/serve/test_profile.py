"""bench/serve/profile.py: top frames of a raw py-spy profile, by a hand-counted case."""

from __future__ import annotations

import pytest

from bench.serve.profile import format_frames, frame_name, top_frames

# root first; 10 samples in all. The py-spy --subprocesses root names the process.
RAW = """\
process 1 python;main (service/cli.py:3);run (asyncio/runners.py:118);handle (service/api/v2.py:40);run (ort.py:220) 3
process 1 python;run (asyncio/runners.py:118);handle (service/api/v2.py:41);dumps (orjson.py:1) 2
process 1 python;run (asyncio/runners.py:118);handle (service/api/v2.py:40) 1
process 1 python;_worker (/usr/lib/python3.11/threading.py:975);write (/x/site-packages/sqlalchemy/engine.py:5) 4
"""


def test_self_and_total_shares() -> None:  # the entry point (cli.py), on every stack, is not listed
    samples, by_self, by_total = top_frames(RAW, n=3)
    assert samples == 10
    assert [(f.name, f.self_share) for f in by_self] == [
        ("write (sqlalchemy/engine.py)", 0.4),
        ("run (ort.py)", 0.3),
        ("dumps (orjson.py)", 0.2),
    ]
    # handle: lines 40 and 41 are one function, 3 + 2 + 1 samples on the stack, 1 as the leaf
    # only our package by total; lines 40 and 41 are one function
    assert [(f.name, f.total_share, f.self_share) for f in by_total] == [("handle (service/api/v2.py)", 0.6, 0.1)]


def test_library_paths_are_shortened_and_line_numbers_dropped() -> None:
    assert frame_name("_worker (/usr/lib/python3.11/threading.py:975)") == "_worker (threading.py)"
    assert frame_name("f (/v/lib/python3.11/site-packages/fastapi/routing.py:12)") == "f (fastapi/routing.py)"
    assert frame_name("<native>") == "<native>"


def test_empty_profile() -> None:
    assert top_frames("") == (0, [], [])


@pytest.mark.parametrize("n", [1, 2])
def test_format_has_one_line_per_frame(n: int) -> None:
    samples, by_self, by_total = top_frames(RAW, n=n)
    text = format_frames(samples, by_self, by_total)
    assert text.startswith("10 samples") and text.count("| `") == n + 1  # one function of ours
