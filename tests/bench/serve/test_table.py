"""bench/serve/table.py: medians, ratios and issue 11's PASS/FAIL lines on hand-computed cases."""

from __future__ import annotations

from bench.serve.table import Memory, Run, checks, medians, memory_table, results_table

LABELS = {"a": "(a) asgi", "b": "(b) fastapi", "c": "(c) mls default", "d": "(d) mls tuned", "f-json": "(f) json",
          "f-json-pg": "(f) json pg"}


def test_median_of_each_column_and_summed_errors() -> None:
    rounds = [Run("b", 1, 8, 1000, 2.0, 9.0, 300, 1), Run("b", 1, 8, 3000, 1.0, 3.0, 100, 0),
              Run("b", 1, 8, 2000, 5.0, 4.0, 200, 2)]
    (row,) = medians(rounds)
    assert (row.rps, row.p50_ms, row.p99_ms, row.cpu_us, row.errors) == (2000, 2.0, 4.0, 200, 3)


def test_table_rows_carry_rows_per_second_and_both_ratios() -> None:
    rows = [Run("a", 64, 8, 400, 1, 2, 50), Run("b", 64, 8, 200, 1, 2, 80), Run("f-json", 64, 8, 300, 1.5, 2.25, 120)]
    lines = results_table(rows, LABELS).splitlines()
    assert lines[2].startswith("| (a) asgi | 64 | 8 | 400 | 25,600 |")
    assert lines[4] == "| (f) json | 64 | 8 | 300 | 19,200 | 1.50 | 2.25 | 120 | 1.50× | 0.75× | 0 |"


def test_missing_baseline_gives_a_dash() -> None:
    (line,) = results_table([Run("f-json", 1, 1, 100, 1, 1, 1)], LABELS).splitlines()[2:]
    assert line.endswith("| – | – | 0 |")


def test_memory_table() -> None:
    assert memory_table({"asgi": Memory(74.4, 80.6, 0.834, 1)}).splitlines()[2] == "| asgi | 1 | 74 | 81 | 0.83 |"


def cell(key: str, rps: float, batch: int = 1, p99: float = 2.0, cpu: float = 150.0) -> Run:
    return Run(key, batch, 8, rps, 1.0, p99, cpu)


def test_checks_pass_fail_and_skip() -> None:
    rows = [cell("a", 5000), cell("b", 2000), cell("c", 300), cell("d", 800), cell("f-json", 4000),
            cell("f-json-pg", 3500), cell("b", 100, batch=64), cell("f-json", 140, batch=64)]
    lines = checks(rows, LABELS)
    assert "PASS  (f) json: req/s ≥ 1.5× (b) fastapi: 2.00×" in lines
    assert "PASS  (f) json: req/s ≥ 0.8× (a) asgi: 0.80×" in lines  # 4000 / 5000 is exactly the target
    assert "PASS  (f) json: p99 ≤ 3 ms: 2.00 ms" in lines
    assert "PASS  (f) json: server CPU ≤ 170 µs/req: 150 µs" in lines
    assert "PASS  (f) json: req/s ≥ 4× (d) mls tuned: 5.00×" in lines
    assert "PASS  (f) json: req/s ≥ 8× (c) mls default: 13.33×" in lines
    assert "FAIL  (f) json: batch-64 rows/s ≥ 1.5× (b) fastapi: 1.40×" in lines
    assert "FAIL  (f) json: PostgreSQL within 10% of SQLite, batch 1: 0.88×" in lines  # 3500 / 4000
    assert "SKIP  (f) json: PostgreSQL within 10% of SQLite, batch 64 (not measured)" in lines
    assert len(lines) == 9


def test_checks_fail_on_latency_and_cpu_and_skip_missing_peers() -> None:
    lines = checks([cell("b", 1000), cell("f-json", 1000, p99=3.01, cpu=171)], LABELS)
    assert "FAIL  (f) json: p99 ≤ 3 ms: 3.01 ms" in lines
    assert "FAIL  (f) json: server CPU ≤ 170 µs/req: 171 µs" in lines
    assert "FAIL  (f) json: req/s ≥ 1.5× (b) fastapi: 1.00×" in lines
    assert "SKIP  (f) json: req/s ≥ 4× (d) mls tuned (not measured)" in lines
