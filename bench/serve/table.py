"""Medians per cell, the results table with ratios to (b) and (a), and issue 11's targets as PASS/FAIL."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Run:
    """One wrk run of one target in one cell."""

    key: str
    batch: int
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # server CPU (whole process tree) per request
    errors: int = 0


@dataclass(frozen=True)
class Memory:
    rss_ready_mib: float
    rss_peak_mib: float
    ready_seconds: float
    processes: int


def medians(runs: Iterable[Run]) -> list[Run]:
    """One row per (target, batch, concurrency): the median of each column over the rounds, errors summed."""
    cells: dict[tuple[str, int, int], list[Run]] = {}
    for r in runs:
        cells.setdefault((r.key, r.batch, r.concurrency), []).append(r)
    out = []
    for (key, batch, conc), rs in cells.items():
        def med(f: Callable[[Run], float], rs: list[Run] = rs) -> float:
            return float(statistics.median(f(r) for r in rs))

        out.append(Run(key, batch, conc, med(lambda r: r.rps), med(lambda r: r.p50_ms), med(lambda r: r.p99_ms),
                       med(lambda r: r.cpu_us), sum(r.errors for r in rs)))
    return out


def ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}×" if base else "–"


def results_table(rows: list[Run], labels: dict[str, str]) -> str:
    """Markdown table, grouped by cell; ratios are req/s (= rows/s: same batch) against (a) and (b)."""
    get = {(r.key, r.batch, r.concurrency): r for r in rows}
    order = {key: i for i, key in enumerate(labels)}
    head = ("| target | batch | c | req/s | rows/s | p50 ms | p99 ms | CPU µs/req | ÷ (b) | ÷ (a) | errors |\n"
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    lines = [head]
    for r in sorted(rows, key=lambda r: (r.batch, r.concurrency, order.get(r.key, len(order)))):
        a, b = get.get(("a", r.batch, r.concurrency)), get.get(("b", r.batch, r.concurrency))
        lines.append(f"| {labels.get(r.key, r.key)} | {r.batch} | {r.concurrency} | {r.rps:,.0f} | "
                     f"{r.rps * r.batch:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.cpu_us:,.0f} | "
                     f"{ratio(r.rps, b.rps if b else None)} | {ratio(r.rps, a.rps if a else None)} | {r.errors} |")
    return "\n".join(lines)


def memory_table(memory: dict[str, Memory]) -> str:
    lines = ["| server | processes | RSS when ready MiB | RSS peak MiB | ready s |", "|---|--:|--:|--:|--:|"]
    for name, m in memory.items():
        lines.append(f"| {name} | {m.processes} | {m.rss_ready_mib:.0f} | {m.rss_peak_mib:.0f} | "
                     f"{m.ready_seconds:.2f} |")
    return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def checks(rows: list[Run], labels: dict[str, str]) -> list[str]:
    """Issue 11's targets (c=8, batch 1 unless stated) for each calibserve target measured; a target whose
    reference was not measured (``--targets``, ``--no-peers``) says SKIP instead of guessing."""
    get = {(r.key, r.batch, r.concurrency): r for r in rows}
    out: list[str] = []

    def compare(key: str, batch: int, ref: str, factor: float, what: str) -> None:
        r, base = get.get((key, batch, 8)), get.get((ref, batch, 8))
        name = f"{labels.get(key, key)}: {what} ≥ {factor:g}× {labels.get(ref, ref)}"
        if r is None or base is None:
            out.append(f"SKIP  {name} (not measured)")
            return
        got = r.rps / base.rps
        out.append(f"{_verdict(got >= factor)}  {name}: {got:.2f}×")

    for key in ("e", "f-json", "f-binary"):
        if (key, 1, 8) not in get:
            continue
        r = get[(key, 1, 8)]
        label = labels.get(key, key)
        compare(key, 1, "b", 1.5, "req/s")
        compare(key, 1, "a", 0.8, "req/s")
        out.append(f"{_verdict(r.p99_ms <= 3)}  {label}: p99 ≤ 3 ms: {r.p99_ms:.2f} ms")
        out.append(f"{_verdict(r.cpu_us <= 170)}  {label}: server CPU ≤ 170 µs/req: {r.cpu_us:.0f} µs")
        compare(key, 1, "d", 4, "req/s")
        compare(key, 1, "c", 8, "req/s")
        compare(key, 64, "b", 2 if key == "f-binary" else 1.5, "batch-64 rows/s")
        for batch in (1, 64):
            pg, sq = get.get((f"{key}-pg", batch, 8)), get.get((key, batch, 8))
            name = f"{label}: PostgreSQL within 10% of SQLite, batch {batch}"
            if pg is None or sq is None:
                out.append(f"SKIP  {name} (not measured)")
            else:
                out.append(f"{_verdict(pg.rps >= 0.9 * sq.rps)}  {name}: {pg.rps / sq.rps:.2f}×")
    on, off = get.get(("e", 1, 8)), get.get(("e-nometrics", 1, 8))
    if on is not None and off is not None:  # issue 11 §3: what the per-request metrics cost
        out.append(f"INFO  request metrics, /v1 batch 1: {on.cpu_us - off.cpu_us:+.0f} µs CPU/req with them on; "
                   f"req/s off/on {off.rps / on.rps:.2f}×")
    single = get.get(("e-single", 1, 8))
    if on is not None and single is not None:  # what the control process costs (or saves) the predict path
        out.append(f"INFO  control process, /v1 batch 1: {on.cpu_us - single.cpu_us:+.0f} µs CPU/req with it on; "
                   f"req/s on/off {on.rps / single.rps:.2f}×, p99 {on.p99_ms:.2f} vs {single.p99_ms:.2f} ms")
    return out
