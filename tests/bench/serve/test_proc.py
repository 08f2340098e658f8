"""bench/serve/proc.py: /proc stat parsing and process-tree sums, by hand-computed cases on a fake /proc
and against psutil on real processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

from bench.serve import proc


def stat_line(pid: int, comm: str, ppid: int, utime: int, stime: int, cutime: int, cstime: int) -> str:
    # fields 3.. of proc(5): state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    # cutime cstime …
    return f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 10 0 0 0 {utime} {stime} {cutime} {cstime} 20 0 1 0"


def fake_proc(root: Path, entries: list[tuple[int, str, int, int, int, int, int, int]]) -> Path:
    for pid, comm, ppid, ut, st, cut, cst, rss in entries:
        d = root / str(pid)
        d.mkdir()
        (d / "stat").write_text(stat_line(pid, comm, ppid, ut, st, cut, cst) + "\n")
        (d / "status").write_text(f"Name:\t{comm}\nVmPeak:\t  999 kB\nVmRSS:\t  {rss} kB\nThreads:\t1\n")
    (root / "self").mkdir()  # non-numeric entries are not processes
    return root


def test_parse_stat_handles_spaces_and_parentheses_in_the_command_name() -> None:
    s = proc.parse_stat(stat_line(42, "uvicorn (worker) 1", 7, 100, 20, 3, 4))
    assert (s.pid, s.ppid, s.cpu_ticks, s.state) == (42, 7, 127, "S")


def test_live_children_are_the_marked_children_that_are_not_zombies(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, [(10, "server", 1, 0, 0, 0, 0, 1), (11, "python", 10, 0, 0, 0, 0, 1),
                                (12, "python", 10, 0, 0, 0, 0, 1), (13, "python", 10, 0, 0, 0, 0, 1),
                                (14, "python", 99, 0, 0, 0, 0, 1)])
    for pid, cmdline in ((11, b"python\0-m\0service.control_process\0"), (12, b"python\0-m\0service.db.x\0"),
                         (13, b"python\0-m\0service.control_process\0"), (14, b"service.control_process")):
        (root / str(pid) / "cmdline").write_bytes(cmdline)
    (root / "13" / "stat").write_text(stat_line(13, "python", 10, 0, 0, 0, 0).replace(" S ", " Z ") + "\n")
    assert proc.live_children(10, b"service.control_process", root) == [11]


def test_tree_sums_descendants_and_reaped_children_but_not_strangers(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, [
        (10, "server", 1, 100, 50, 30, 20, 1024),  # 200 ticks, 30+20 from a reaped child
        (11, "worker", 10, 40, 10, 0, 0, 2048),  # 50
        (12, "grandchild", 11, 5, 5, 0, 0, 512),  # 10
        (20, "neighbour", 1, 999, 999, 0, 0, 4096),  # not ours
    ])
    stats = proc.all_stats(root)
    assert proc.tree(10, stats) == [10, 11, 12]
    assert proc.tree(99, stats) == []
    assert proc.tree_cpu_seconds(10, root) == (200 + 50 + 10) / proc.CLOCK_TICKS
    assert proc.tree_rss_mib(10, root) == (1024 + 2048 + 512) / 1024


def test_rss_of_a_zombie_is_zero() -> None:
    assert proc.rss_kib("Name:\tx\nState:\tZ (zombie)\n") == 0


BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\ntime.sleep(30)"


def test_live_tree_matches_psutil_over_parent_and_children() -> None:
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys\n"
        f"kids = [subprocess.Popen([sys.executable, '-c', {BURN!r}]) for _ in range(2)]\n"
        f"exec({BURN!r})")])
    try:
        p = psutil.Process(parent.pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the parent and both children have burnt their 0.4 s
            members = [p, *p.children(recursive=True)]
            if len(members) == 3 and all(sum(m.cpu_times()[:2]) >= 0.4 for m in members):
                break
            time.sleep(0.05)
        expected = sum(sum(m.cpu_times()[:4]) for m in [p, *p.children(recursive=True)])
        assert abs(proc.tree_cpu_seconds(parent.pid) - expected) <= 0.05
        assert proc.tree_cpu_seconds(parent.pid) >= 1.2
        rss = sum(m.memory_info().rss for m in [p, *p.children(recursive=True)]) / 2**20
        assert abs(proc.tree_rss_mib(parent.pid) - rss) <= 1.0
    finally:
        for child in psutil.Process(parent.pid).children(recursive=True):
            child.kill()
        parent.kill()
        parent.wait()
