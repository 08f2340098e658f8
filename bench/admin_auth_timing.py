"""Admin auth timing: wrong tokens sharing 0 vs all-but-one leading characters with the real one.

A constant-time check answers both in the same time; an early-exit string compare would answer the
long-prefix guess later. Runs the real ASGI app in process (less noise than a socket), interleaving the
two kinds of guesses, and prints medians and their ratio."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from service.app import create_app
from service.db.migrate import upgrade
from service.settings import Settings

TOKEN = "s3cret-admin-token-" + "x" * 45


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="admin token check time vs how much of the token a guess shares")
    parser.add_argument("--rounds", type=int, default=3000)
    rounds = parser.parse_args(argv).rounds
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        settings = Settings(database_url=url, model_repository=Path(tmp) / "models", admin_token=TOKEN)
        guesses = {"no shared prefix": "Z" * len(TOKEN), "all but last char": TOKEN[:-1] + "Z",
                   "right token": TOKEN}
        times: dict[str, list[float]] = {k: [] for k in guesses}
        with TestClient(create_app(settings)) as client:
            for _ in range(rounds):
                for name, guess in guesses.items():
                    started = time.perf_counter()
                    client.get("/v1/admin/audit?limit=1", headers={"Authorization": f"Bearer {guess}"})
                    times[name].append(time.perf_counter() - started)
    base = statistics.median(times["no shared prefix"])
    print(f"{'guess':22s} {'median µs':>10s} {'ratio':>7s}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:22s} {med * 1e6:10.1f} {med / base:7.3f}")
    print("(the right token also runs the audit query, so only the two wrong guesses compare like for like)")


if __name__ == "__main__":
    main(sys.argv[1:])
