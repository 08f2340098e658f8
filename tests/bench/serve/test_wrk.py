"""bench/serve/wrk.py: reading wrk's --latency report (texts as wrk 4 prints them)."""

from __future__ import annotations

from bench.serve.wrk import parse

CLEAN = """Running 1s test @ http://127.0.0.1:18999/
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.49ms    1.23ms  10.35ms   90.95%
    Req/Sec     1.51k   101.56     1.70k    80.00%
  Latency Distribution
     50%    1.12ms
     75%    1.26ms
     90%    2.47ms
     99%    7.61ms
  1506 requests in 1.01s, 6.51MB read
Requests/sec:   1496.68
Transfer/sec:      6.47MB
"""

WITH_ERRORS = """Running 3s test @ http://127.0.0.1:1/infer
  1 threads and 32 connections
  Latency Distribution
     50%  812.00us
     75%    1.26ms
     90%    2.47ms
     99%     1.20s
  2400 requests in 3.00s, 1.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 5
  Non-2xx or 3xx responses: 10
Requests/sec:    800.00
"""


def test_clean_report() -> None:
    r = parse(CLEAN)
    assert (r.requests, r.rps, r.p50_ms, r.p99_ms, r.errors) == (1506, 1496.68, 1.12, 7.61, 0)


def test_units_and_errors_are_converted() -> None:
    r = parse(WITH_ERRORS)
    assert r.p50_ms == 0.812 and r.p99_ms == 1200.0
    assert r.errors == 10 + 2 + 5 and r.requests == 2400
