"""Slice overhead on feedback: labels/s of the feedback transaction with no slice key vs two configured keys.

In-process (``FeedbackIngest.submit_sync``, one thread, batches of ``--batch`` labels, every label a new
``accepted`` row), on fresh SQLite and PostgreSQL databases seeded through the shipper (``insert_blocks``)
with one request block per 100 predictions, each tagged ``{"country": one of 8, "user": one of 10,000,
"device": …}``. The sliced run reads the rows' tags (one join), admits values (``slice_max_values`` = 20:
``user`` fills its 20 slots in the first batch, the rest go to ``other``) and upserts the per-slice bins and
their roll-ups in the same transaction. Runs alternate (off, on, off, on, …) on disjoint ids; medians.

    python -m bench slice_overhead [--labels 20000] [--batch 1000] [--repeats 3] [--databases sqlite postgresql]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import uuid_utils

from bench.feedback_ingest import drop_database, fresh_database
from service.app import build_services
from service.db.migrate import upgrade
from service.db.prediction_block import PredictionBlock
from service.db.prediction_rows import insert_blocks
from service.settings import Settings

KEYS = ["country", "user"]


def seed(url: str, n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """n predictions over the last hour in blocks of 100 (one request each, one tags object); labels."""
    from service.db.engine import make_engine

    engine = make_engine(url)
    now = datetime.now(UTC)
    ids: list[str] = []
    blocks = []
    for start in range(0, n, 100):
        p = rng.dirichlet(np.ones(10) * 0.3, size=100).astype("<f4")
        block_ids = [str(uuid_utils.uuid7()) for _ in range(100)]
        tags = {"country": f"c{int(rng.integers(8))}", "user": f"u{int(rng.integers(10_000))}", "device": "phone"}
        blocks.append(PredictionBlock("digits", 1, 1, now - timedelta(seconds=3599 * start / n), block_ids,
                                      np.log(p), p, p.max(axis=1).astype(np.float64), p.argmax(axis=1), tags))
        ids += block_ids
    for i in range(0, len(blocks), 50):
        insert_blocks(engine, blocks[i:i + 50], 60)
    engine.dispose()
    probs = np.concatenate([b.probabilities for b in blocks])
    labels = np.where(rng.random(n) < 0.8, probs.argmax(axis=1), rng.integers(0, 10, n))
    return ids, labels


def rate(url: str, repository: Path, keys: list[str], ids: list[str], labels: np.ndarray, batch: int) -> float:
    services = build_services(Settings(database_url=url, model_repository=repository, slice_keys=keys,
                                       spool_dir=repository.parent / "spool"))
    started = time.perf_counter()
    for start in range(0, len(ids), batch):
        items = list(zip(ids[start:start + batch], labels[start:start + batch].tolist(), strict=True))
        results = services.feedback.submit_sync(items)
        assert all(r.status == "accepted" for r in results), {r.status for r in results}
    elapsed = time.perf_counter() - started
    services.engine.dispose()
    return len(ids) / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench slice_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=20_000, help="labels per run")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'database':>10} {'slice keys':>14} {'labels/s':>10} {'ratio':>7}")
    for db in args.databases:
        with tempfile.TemporaryDirectory(prefix="calibserve-slices-") as tmp:
            work = Path(tmp)
            (work / "models").mkdir()
            name = None
            url = f"sqlite:///{work / 'bench.db'}"
            if db == "postgresql":
                url, name = fresh_database()
            try:
                upgrade(url)
                ids, labels = seed(url, 2 * args.repeats * args.labels, rng)
                runs: dict[bool, list[float]] = {False: [], True: []}
                for r in range(2 * args.repeats):
                    sliced = r % 2 == 1
                    part = slice(r * args.labels, (r + 1) * args.labels)
                    runs[sliced].append(rate(url, work / "models", KEYS if sliced else [], ids[part], labels[part],
                                             args.batch))
            finally:
                if name is not None:
                    drop_database(name)
        off, on = statistics.median(runs[False]), statistics.median(runs[True])
        print(f"{db:>10} {'none':>14} {off:>10,.0f} {1.0:>6.2f}×")
        print(f"{db:>10} {'country, user':>14} {on:>10,.0f} {on / off:>6.2f}×")


if __name__ == "__main__":
    main()
