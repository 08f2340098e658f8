"""Tag storage: SQLite growth of the prediction log for requests with large tags, per-row copies (before
migration 0006) vs one ``prediction_tags`` row per distinct object (after).

Issue 12 measured a 446 kB request with a 100 kB tags object growing SQLite by 100 MB: the tags were copied
into every row. Tags are now bounded (``MAX_TAG_BYTES``, 4 kB serialised; 413 beyond), and stored once.
Both layouts are measured in the same run on fresh SQLite files: ``before`` is a database at revision 0005
filled the way the old shipper did (``tags`` JSON text in every row, one executemany), ``after`` is the
head schema filled by the shipper itself (``insert_blocks``). Each request is one block of ``--rows`` rows
(the default, 1,600 digits rows, is a ~446 kB v1 request body) and a tags object of ``--tag-bytes``.

    python -m bench tag_storage [--rows 1600] [--tag-bytes 4000] [--requests 1 10]
    python -m bench tag_storage --tag-bytes 100000 --beyond-limit --requests 1
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import uuid_utils

from service.db.engine import make_engine
from service.db.migrate import upgrade
from service.db.prediction_block import PredictionBlock
from service.db.prediction_rows import insert_blocks
from service.validation import check_tags


def _tags(size: int) -> dict[str, object]:
    tags: dict[str, object] = {"tenant": "acme", "blob": ""}
    tags["blob"] = "x" * (size - len(orjson.dumps(tags)))
    return tags


def _block(rows: int, tags: dict[str, object], seed: int) -> PredictionBlock:
    p = np.random.default_rng(seed).dirichlet(np.ones(10), size=rows).astype("<f4")
    return PredictionBlock("digits", 1, 1, datetime.now(UTC), [str(uuid_utils.uuid7()) for _ in range(rows)],
                           np.log(p), p, p.max(axis=1).astype(np.float64), p.argmax(axis=1), tags)


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.parent.glob(path.name + "*"))  # the file, its -wal and -shm


def _checkpointed(path: Path) -> int:
    """The database's bytes once its WAL is folded in (a plain connection: no transaction around it)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return _size(path)


def measure(layout: str, blocks: list[PredictionBlock], work: Path) -> int:
    path = work / f"{layout}-{uuid.uuid4().hex[:8]}.db"
    url = f"sqlite:///{path}"
    upgrade(url, "0005" if layout == "before" else "head")
    start = _checkpointed(path)
    engine = make_engine(url)
    if layout == "before":  # the pre-0006 shipper: a JSON copy of the tags in every row
        with engine.begin() as conn:
            dbapi = conn.connection.driver_connection
            assert dbapi is not None
            for b in blocks:
                created = b.created_at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
                dbapi.executemany(
                    "INSERT INTO predictions (id, model, version, calibrator_version, created_at, logits, "
                    "probabilities, confidence, class_index, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(pid, b.model, b.version, b.calibrator_version, created, b.logits[i].tobytes(),
                      b.probabilities[i].tobytes(), float(b.confidence[i]), int(b.class_index[i]), json.dumps(b.tags))
                     for i, pid in enumerate(b.ids)])
    else:
        insert_blocks(engine, blocks, 60)
    engine.dispose()
    return _checkpointed(path) - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench tag_storage", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1600, help="rows per request (default: a ~446 kB request)")
    parser.add_argument("--tag-bytes", type=int, default=4000, help="serialised tags size (limit: 4096)")
    parser.add_argument("--requests", type=int, nargs="+", default=[1, 10], help="requests with the same tags")
    parser.add_argument("--beyond-limit", action="store_true",
                        help="skip the 4 kB tags bound (to reproduce issue 12's 100 kB case; the service answers 413)")
    args = parser.parse_args(argv)
    tags = _tags(args.tag_bytes) if args.beyond_limit else check_tags(_tags(args.tag_bytes)) or {}
    from tests.factories import digits  # the request body as a client would send it

    x, _ = digits()
    body = len(orjson.dumps({"instances": np.resize(x, (args.rows, x.shape[1])).tolist(), "tags": tags}))
    print(f"{args.rows} rows, tags {len(orjson.dumps(tags))} B, request body {body / 1e3:.0f} kB")
    print(f"{'requests':>8} {'before (per-row tags)':>22} {'after (stored once)':>20} {'ratio':>7}")
    with tempfile.TemporaryDirectory(prefix="calibserve-tags-") as tmp:
        for n in args.requests:
            blocks = [_block(args.rows, tags, seed) for seed in range(n)]
            before, after = measure("before", blocks, Path(tmp)), measure("after", blocks, Path(tmp))
            print(f"{n:>8} {before / 1e6:>19.2f} MB {after / 1e6:>17.2f} MB {before / after:>6.1f}×")


if __name__ == "__main__":
    main()
