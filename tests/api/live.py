"""A real uvicorn server in a thread (for what only a live socket shows: keep-alive, deadlines, the HTTP
parser), plus a minimal HTTP/1.1 client that keeps one socket across requests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from tests.e2e.server import free_port


@contextmanager
def live_server(app: Any, **config: Any) -> Iterator[int]:
    """Serve ``app`` (lifespan included) on 127.0.0.1; yields the port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response from ``sock`` (Content-Length framing), leaving the socket open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-body")
        body += chunk
    return int(lines[0].split()[1]), headers, body


def read_responses(sock: socket.socket, n: int) -> list[tuple[int, dict[str, str], bytes]]:
    """``n`` responses in a row (pipelined, or an interim 100 and its answer: one read may hold several)."""
    stream = sock.makefile("rb")
    return [read_from(stream) for _ in range(n)]


def read_from(stream: Any) -> tuple[int, dict[str, str], bytes]:
    """One response from a buffered reader over the socket (``sock.makefile("rb")``)."""
    status = int(stream.readline().split()[1])
    headers = {}
    while (line := stream.readline().decode("latin-1").strip()):
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return status, headers, stream.read(int(headers.get("content-length", "0")))


def request(sock: socket.socket, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                 + body)
    return read_response(sock)
