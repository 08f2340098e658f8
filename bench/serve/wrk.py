"""One wrk run (a Lua script POSTs a body file) and what its ``--latency`` report says."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA = """
wrk.method = "POST"
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE")
local h = os.getenv("BENCH_IHCL")
if h and h ~= "" then wrk.headers["Inference-Header-Content-Length"] = h end
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True)
class WrkReport:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx responses plus socket errors


def parse(out: str) -> WrkReport:
    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
        return float(value) * UNITS[unit]

    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(g) for g in sockets.groups()) if sockets else 0)
    return WrkReport(requests, rps, pct("50"), pct("99"), errors)


def body_env(body: tuple[Path, str, str]) -> dict[str, str]:
    """What the Lua script reads: the body file, its content type, the binary header length."""
    return {**os.environ, "BENCH_BODY": str(body[0]), "BENCH_CONTENT_TYPE": body[1], "BENCH_IHCL": body[2]}


def run(url: str, body: tuple[Path, str, str], concurrency: int, seconds: int, lua: Path) -> WrkReport:
    """One wrk thread (as in issue 11's measurements: wrk shares the 2 cores with the server)."""
    # --timeout 10s: a slow answer (batch 64 at c=32 on a shared machine) is latency, not an error
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s", "-s", str(lua),
                          "--latency", url],
                         env=body_env(body), capture_output=True, text=True, check=True).stdout
    return parse(out)
