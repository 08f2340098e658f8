"""Hostile client: ≥ 50 malicious or malformed requests against a real ``calibserve serve`` on 127.0.0.1.

``python -m bench hostile [--database-url URL] [--repository DIR]``: the request cases of
``bench/_hostile_cases.py`` over one keep-alive connection, then socket-level cases an HTTP client cannot
send (malformed heads, slowloris heads and bodies, keep-alive after errors) and a metrics-cardinality
probe. Prints one row per case: expected status, the status received, and whether the connection was
still usable afterwards. The target is 0 5xx and every status as expected.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench._hostile_cases import ROW, hostile_cases

TOKEN = "bench-admin-token"
HEAD_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0


@dataclass
class Server:
    base_url: str
    port: int
    pid: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _repository(work: Path, repository: Path | None) -> Path:
    target = work / "models"
    if repository is not None:
        shutil.copytree(repository, target)
        return target
    from service.training.pipeline import train_and_export

    train_and_export(dataset="digits", loss="flsd53", name="digits", version=1, repository=target,
                     calibrator="temperature", curvature=False, progress=False, epochs=40)
    return target


@contextmanager
def serve(work: Path, repository: Path | None, database_url: str | None = None, **env: object) -> Iterator[Server]:
    """``calibserve serve`` (the shipped uvicorn options) in a subprocess; SIGTERM at the end."""
    port = _free_port()
    environ = {**os.environ, "CALIBSERVE_DATABASE_URL": database_url or f"sqlite:///{work / 'calibserve.db'}",
               "CALIBSERVE_MODEL_REPOSITORY": str(_repository(work, repository)), "PYTHONUNBUFFERED": "1",
               **{f"CALIBSERVE_{k.upper()}": str(v) for k, v in env.items()}}
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=environ, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {(work / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield Server(base, port, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# ---- socket-level cases ------------------------------------------------------------------------------
def _read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return 0  # closed without a response
        data += chunk
    return int(data.split()[1])


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock`` (EOF or reset), or None if it stayed open ``seconds``."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def _raw(port: int, payload: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        return _read_status(sock)


def _silent(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        waited = closed_within(sock, HEAD_TIMEOUT + 5)
    return 0 if waited is not None and waited < HEAD_TIMEOUT + 1.5 else -1  # 0 = closed in time


def _trickled_head(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for _ in range(int(HEAD_TIMEOUT * 4) + 8):
            try:
                sock.sendall(b"X-Slow: 1\r\n" if _ else b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
            except OSError:
                return 0  # the server closed it
            time.sleep(0.25)
    return -1


def _trickled_body(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/feedback HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"items\": [")
        return _read_status(sock)


def _slowloris(port: int, n: int = 300) -> int:
    """``n`` connections that send a head and part of a body: all must end (408 or closed) in the bound."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=BODY_TIMEOUT + 10)
        s.sendall(b"POST /v1/feedback HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        socks.append(s)
    statuses = [_read_status(s) for s in socks]
    for s in socks:
        s.close()
    return 408 if all(st in (408, 0) for st in statuses) else max(statuses)


def _keep_alive_after_errors(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for path in ("/v1/models/nope/versions/1/calibration", "/v1/models/digits/versions/%C2%B2/calibrators",
                     "/v2/health/live"):
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                data += sock.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(
                b"content-length")))
            while len(body) < length:
                body += sock.recv(65536)
        return int(head.split()[1])  # the last one, on the same socket


def _metrics_growth(base: str, n: int = 2000) -> int:
    with httpx.Client() as client:
        before = len(client.get(f"{base}/metrics").content)
        for i in range(n):
            client.post(f"{base}/v1/models/unknown-{i}/predict", json={"instances": [ROW]})
        after = len(client.get(f"{base}/metrics").content)
    return 200 if after - before < 10_000 else 500  # label values come only from loaded models


SOCKET_CASES: list[tuple[str, int, Callable[[Server], int]]] = [
    ("Content-Length: abc", 400, lambda s: _raw(s.port, b"POST /v1/feedback HTTP/1.1\r\nHost: x\r\n"
                                                  b"Content-Length: abc\r\n\r\n")),
    ("two Content-Length headers", 400, lambda s: _raw(s.port, b"POST /v1/feedback HTTP/1.1\r\nHost: x\r\n"
                                                         b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n")),
    ("Content-Length: -1", 400, lambda s: _raw(s.port, b"POST /v1/feedback HTTP/1.1\r\nHost: x\r\n"
                                                 b"Content-Length: -1\r\n\r\n")),
    ("garbage request line", 400, lambda s: _raw(s.port, b"\x00\x01\x02 nonsense\r\n\r\n")),
    ("header line of 100 kB (head bound 64 KiB)", 400,
     lambda s: _raw(s.port, b"GET /v2 HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100_000 + b"\r\n\r\n")),
    (f"silent connection (closed within {HEAD_TIMEOUT:g}s)", 0, lambda s: _silent(s.port)),
    (f"trickled head (closed within {HEAD_TIMEOUT:g}s)", 0, lambda s: _trickled_head(s.port)),
    (f"trickled body (408 within {BODY_TIMEOUT:g}s)", 408, lambda s: _trickled_body(s.port)),
    ("300 slowloris bodies (all 408 or closed)", 408, lambda s: _slowloris(s.port)),
    ("keep-alive after two 404s", 200, lambda s: _keep_alive_after_errors(s.port)),
    ("2,000 unknown model names: /metrics grows < 10 kB", 200, lambda s: _metrics_growth(s.base_url)),
]


def run(server: Server) -> list[tuple[str, int, int, bool]]:
    """(case, expected, received, connection still usable) for every case."""
    rows = []
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        pid = client.post("/v1/models/digits/predict", json={"instances": [ROW]}).json()["predictions"][0][
            "prediction_id"]
        for case in hostile_cases(pid):
            given = {**case.headers, **({"authorization": f"Bearer {TOKEN}"} if case.admin else {})}
            # as httpx itself sends them: str values as ASCII, bytes as they are
            headers = {k.encode("ascii"): v if isinstance(v, bytes) else v.encode("ascii") for k, v in given.items()}
            try:
                status = client.request(case.method, case.path, params=case.params, content=case.body,
                                        headers=headers).status_code
            except httpx.TransportError:
                status = 0
            usable = client.get("/v2/health/live").status_code == 200
            rows.append((case.name, case.expected, status, usable))
    for name, expected, probe in SOCKET_CASES:
        try:
            got = probe(server)
        except OSError:  # reset where a response was due
            got = -2
        rows.append((name, expected, got, httpx.get(f"{server.base_url}/v2/health/live").status_code == 200))
    return rows


def print_table(rows: list[tuple[str, int, int, bool]]) -> None:
    print(f"| #  | {'case':58s} | expected | got | next request OK |")
    print(f"|----|{'-' * 60}|----------|-----|-----------------|")
    for i, (name, expected, got, usable) in enumerate(rows, 1):
        mark = "" if got == expected else "  ← MISMATCH"
        print(f"| {i:2d} | {name[:58]:58s} | {expected:8d} | {got:3d} | {'yes' if usable else 'NO':15s} |{mark}")
    five = sum(1 for _, _, got, _ in rows if got >= 500)
    wrong = sum(1 for _, expected, got, _ in rows if got != expected)
    print(f"\n{len(rows)} cases: {five} 5xx, {wrong} unexpected statuses, "
          f"{sum(1 for r in rows if not r[3])} unusable afterwards  (0 = closed by the server, as intended)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench hostile", description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--repository", type=Path, help="a repository with the digits model (else trained)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="calibserve-hostile-"))
    try:
        with serve(work, args.repository, args.database_url, ADMIN_TOKEN=TOKEN,
                   HEADER_TIMEOUT_SECONDS=HEAD_TIMEOUT, BODY_TIMEOUT_SECONDS=BODY_TIMEOUT) as server:
            rows = run(server)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows)
    return 0 if all(got == expected and got < 500 for _, expected, got, _ in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
