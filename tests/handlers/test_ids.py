"""service/handlers/ids.py: batch UUIDv7 strings against the RFC 9562 layout, parsed by the stdlib."""

from __future__ import annotations

import time
import uuid

import pytest
import uuid_utils

from service.handlers import ids as ids_module
from service.handlers.ids import uuid7_strings


@pytest.mark.parametrize("n", [1, 2, 64, 10_000])
def test_a_batch_is_canonical_uuid7_strictly_increasing_and_stamped_now(n: int) -> None:
    before_ms = time.time_ns() // 1_000_000
    got = uuid7_strings(n)
    after_ms = time.time_ns() // 1_000_000
    parsed = [uuid.UUID(s) for s in got]
    assert len(set(got)) == n
    assert all(str(u) == s for u, s in zip(parsed, got, strict=True))  # canonical lower-case 8-4-4-4-12
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert all(a.int < b.int for a, b in zip(parsed, parsed[1:], strict=False))
    assert all(before_ms <= u.int >> 80 <= after_ms for u in parsed)  # the top 48 bits: Unix milliseconds


def test_consecutive_batches_stay_ordered_and_disjoint() -> None:
    batches = [uuid7_strings(50) for _ in range(200)]
    flat = [uuid.UUID(s).int for batch in batches for s in batch]
    assert len(set(flat)) == len(flat)
    assert flat == sorted(flat)


def test_low_bits_near_their_top_do_not_carry_into_the_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    top = uuid.UUID("01a242a9-565c-721e-bc50-c0a2ffffffff")  # random bits all ones: counting up would carry
    monkeypatch.setattr(ids_module.uuid_utils, "uuid7", lambda: uuid_utils.UUID(str(top)))
    got = [uuid.UUID(s) for s in uuid7_strings(3)]
    assert [u.int >> 32 for u in got] == [top.int >> 32] * 3  # time and counter unchanged
    assert [u.int & 0xFFFFFFFF for u in got] == [0xFFFFFFFD, 0xFFFFFFFE, 0xFFFFFFFF]


def test_uuid7_seconds_reads_the_rfc_9562_example_and_refuses_other_text() -> None:
    # RFC 9562 appendix A.6: 017F22E2-79B0-7CC3-98C4-DC0C0C07398F was made at 0x017F22E279B0 ms
    # = 2022-02-22T19:22:22Z (the RFC's "Tuesday, February 22, 2022 2:22:22.00 PM GMT-05:00")
    assert ids_module.uuid7_seconds("017f22e2-79b0-7cc3-98c4-dc0c0c07398f") == 1645557742.0
    assert ids_module.uuid7_seconds(str(uuid.uuid4())) is None  # version 4: no time in it
    assert ids_module.uuid7_seconds("017f22e2-79b0-7cc3-98c4") is None
    assert ids_module.uuid7_seconds("017f22e2x79b0-7cc3-98c4-dc0c0c07398f") is None
    assert ids_module.uuid7_seconds("01zf22e2-79b0-7cc3-98c4-dc0c0c07398f") is None
    made = uuid7_strings(1)[0]
    assert abs(ids_module.uuid7_seconds(made) - uuid.UUID(made).int / 2**80 / 1000) < 1e-3  # type: ignore[operator]
