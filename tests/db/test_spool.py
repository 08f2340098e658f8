"""The spool's segment files on their own: rotation, adoption by another process, torn tails."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.db import spool as spool_module
from service.db.prediction_block import decode, encode
from service.db.spool import HEADER, create_own, orphans
from tests.db.test_writer import block


def test_records_cross_segments_and_shipped_segments_are_deleted(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 2048)
    own = create_own(tmp_path)
    blocks = [block(3) for _ in range(30)]
    for b in blocks:
        own.append(encode(b), 3)
    assert len(list(tmp_path.glob("seg-*.log"))) > 3 and own.rows == 90
    shipped: list[str] = []
    while batch := own.read(7):
        shipped += [pid for _, _, payload in batch for pid in decode(payload).ids]
        own.delete([s for s, _, _ in batch], sum(n for _, n, _ in batch), sum(len(p) for _, _, p in batch))
    assert shipped == [pid for b in blocks for pid in b.ids] and own.rows == 0
    assert len(list(tmp_path.glob("seg-*.log"))) == 1  # only the segment being written remains
    own.close()
    assert list(tmp_path.glob("seg-*")) == []


def test_a_dead_process_stream_is_adopted_and_a_torn_tail_ignored(tmp_path: Path) -> None:
    dead = create_own(tmp_path)
    kept = [block(2) for _ in range(4)]
    for b in kept:
        dead.append(encode(b), 2)
    (segment,) = tmp_path.glob("seg-*.log")
    with open(segment, "ab") as f:  # a record cut short, as a kill mid-write could leave it
        f.write(HEADER.pack(1000, 5, 0) + b"partial")
    assert orphans(tmp_path, tmp_path / "none.lock") == []  # its owner still holds the lock
    dead._lock_file.close()  # the process is gone: its flock is released
    (adopted,) = orphans(tmp_path, tmp_path / "none.lock")
    assert adopted.rows == 8
    ids = [pid for _, _, p in adopted.read(100) for pid in decode(p).ids]
    assert ids == [pid for b in kept for pid in b.ids]


def test_the_index_stays_small_while_a_long_backlog_drains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """16 bytes per unshipped record, and shipped ones are dropped: a days-long outage fits in memory."""
    monkeypatch.setattr(spool_module, "INDEX_COMPACT", 10)
    own = create_own(tmp_path)
    blocks = [block(1) for _ in range(100)]
    for b in blocks:
        own.append(encode(b), 1)
    shipped: list[str] = []
    while batch := own.read(7):
        shipped += [pid for _, _, payload in batch for pid in decode(payload).ids]
        own.delete([s for s, _, _ in batch], sum(n for _, n, _ in batch), sum(len(p) for _, _, p in batch))
        assert len(own._end_of) <= 10 + 7 + (100 - len(shipped))  # compacted as it goes
    assert shipped == [pid for b in blocks for pid in b.ids] and own.rows == 0


def test_pending_spans_come_from_the_index_and_stay_within_one_segment(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """What the ship process is told to read: whole records of one segment, up to max_rows (at least one),
    exactly the bytes ``read_records`` finds there, without the serving process reading the file."""
    monkeypatch.setattr(spool_module, "SEGMENT_BYTES", 2048)
    own = create_own(tmp_path)
    blocks = [block(3) for _ in range(12)]
    for b in blocks:
        own.append(encode(b), 3)

    def no_reads(*args: object, **kwargs: object) -> None:
        raise AssertionError("pending() must not read the segment files")

    shipped: list[str] = []
    paths: set[Path] = set()
    while True:
        with monkeypatch.context() as m:
            m.setattr(spool_module, "read_records", no_reads)
            span = own.pending(7)
        if span is None:
            break
        assert span.rows == 3 * len(span.seqs) and (span.rows <= 7 or len(span.seqs) == 1)
        records = list(spool_module.read_records(span.path, span.start, span.end))
        assert len(records) == len(span.seqs) and records[-1][0] == span.end
        assert span.bytes == sum(len(payload) for _, _, payload in records)
        shipped += [pid for _, _, payload in records for pid in decode(payload).ids]
        paths.add(span.path)
        own.delete(span.seqs, span.rows, span.bytes)
    assert len(paths) > 2  # the records crossed segments; no span did
    assert shipped == [pid for b in blocks for pid in b.ids] and own.rows == 0 and own.bytes == 0
    assert own.shipped_through == 12
