"""Top frames of a py-spy profile taken on a live server under wrk load.

``py-spy record --format raw`` writes collapsed stacks, one line per distinct stack:
``thread;frame;frame;…;leaf count`` with each frame ``function (file:line)``, root first.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_LIBRARY = re.compile(r"^.*/site-packages/|^.*/lib/python3\.\d+/")


@dataclass(frozen=True)
class Frame:
    name: str  # "function (file)" without the line number, so one function's lines add up
    self_share: float  # of all samples, with this frame as the leaf
    total_share: float  # of all samples, with this frame anywhere on the stack


def frame_name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if m is None:
        return frame.strip()
    path = _LIBRARY.sub("", m["file"])  # library files by package path, ours as py-spy shows them
    return f"{m['function']} ({path})"


# the entry point, on every stack: it would fill the by-total table with 100% rows
ENTRY_FILES = ("service/__main__.py", "service/cli.py")


def top_frames(collapsed: str, n: int = 15, package: str = "service/") -> tuple[int, list[Frame], list[Frame]]:
    """(samples, top-n frames by self share, top-n frames of ``package`` by total share) of a raw py-spy
    profile: where the interpreter is, and which of our functions it is under."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";")[1:]]  # [0] names the thread/process
        if not frames:
            continue
        samples += count
        self_counts[frames[-1]] += count
        for name in set(frames):
            total_counts[name] += count
    if samples == 0:
        return 0, [], []

    def frames_of(counts: Counter[str]) -> list[Frame]:
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]  # ties by name
        return [Frame(name, self_counts[name] / samples, total_counts[name] / samples) for name, _ in ranked]

    ours = Counter({name: c for name, c in total_counts.items()
                    if f"({package}" in name and not any(f"({e})" in name for e in ENTRY_FILES)})
    return samples, frames_of(self_counts), frames_of(ours)


def format_frames(samples: int, by_self: list[Frame], by_total: list[Frame]) -> str:
    lines = [f"{samples} samples", "", "| self % | total % | frame (by self time) |", "|--:|--:|---|"]
    lines += [f"| {f.self_share:.1%} | {f.total_share:.1%} | `{f.name}` |" for f in by_self]
    lines += ["", "| total % | self % | our function (by time on the stack) |", "|--:|--:|---|"]
    lines += [f"| {f.total_share:.1%} | {f.self_share:.1%} | `{f.name}` |" for f in by_total]
    return "\n".join(lines)
