"""CPU time and RSS of a server's whole process tree, read from ``/proc`` (Linux ``proc(5)``).

A server is more than its first pid: uvicorn ``--workers`` forks workers, MLServer forks an inference
pool, a prediction-log shipper may run as a child. Per-request CPU is the sum over the tree of
``utime + stime`` plus ``cutime + cstime`` (children already reaped by a tree member), so a worker that
exits during a run still counts once: a live process's time is never in anyone's ``cutime``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stat:
    pid: int
    ppid: int
    cpu_ticks: int  # utime + stime + cutime + cstime
    state: str = "R"  # field 3: "Z" for a zombie


def parse_stat(text: str) -> Stat:
    """One ``/proc/<pid>/stat`` line. ``comm`` (field 2) may hold spaces and parentheses, so split after
    the last ``)``; then fields 4 (ppid) and 14–17 (utime, stime, cutime, cstime; 1-based as in proc(5))."""
    pid = int(text[: text.index("(")])
    rest = text[text.rindex(")") + 2 :].split()  # rest[0] is field 3 (state)
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(v) for v in rest[11:15])
    return Stat(pid, ppid, utime + stime + cutime + cstime, rest[0])


def all_stats(proc: Path = PROC) -> dict[int, Stat]:
    out = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                stat = parse_stat((entry / "stat").read_text())
            except (OSError, ValueError):  # exited between listing and reading
                continue
            out[stat.pid] = stat
    return out


def tree(root: int, stats: dict[int, Stat]) -> list[int]:
    """``root`` and all its descendants (breadth first) among ``stats``."""
    children: dict[int, list[int]] = {}
    for s in stats.values():
        children.setdefault(s.ppid, []).append(s.pid)
    out, frontier = [], [root] if root in stats else []
    while frontier:
        pid = frontier.pop(0)
        out.append(pid)
        frontier.extend(sorted(children.get(pid, [])))
    return out


def live_children(parent: int, marker: bytes, proc: Path = PROC) -> list[int]:
    """Live (not zombie) children of ``parent`` whose command line holds ``marker``, e.g. a server's control
    process (``b"service.control_process"``)."""
    found = []
    for stat in all_stats(proc).values():
        if stat.ppid == parent and stat.state != "Z":
            try:
                if marker in (proc / str(stat.pid) / "cmdline").read_bytes():
                    found.append(stat.pid)
            except OSError:  # exited meanwhile
                continue
    return sorted(found)


def tree_cpu_seconds(root: int, proc: Path = PROC) -> float:
    """CPU seconds used so far by ``root``'s process tree (user + system, reaped children included)."""
    stats = all_stats(proc)
    return sum(stats[pid].cpu_ticks for pid in tree(root, stats)) / CLOCK_TICKS


def rss_kib(status: str) -> int:
    """``VmRSS`` of a ``/proc/<pid>/status`` text in KiB (0 for a zombie, which has none)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tree_rss_mib(root: int, proc: Path = PROC) -> float:
    """Resident memory of ``root``'s tree in MiB. Shared pages (a forked worker's copy-on-write heap)
    count in every process, as ``ps`` shows them: an upper bound on what the tree holds."""
    stats = all_stats(proc)
    total = 0
    for pid in tree(root, stats):
        try:
            total += rss_kib((proc / str(pid) / "status").read_text())
        except OSError:
            continue
    return total / 1024
