"""Prediction ids: UUIDv7 strings, time-ordered, unique across processes, one ``uuid7()`` call per batch.

``uuid_utils.uuid7()`` (RFC 9562, method 1) puts the millisecond time in the top 48 bits, then a 42-bit counter
(``rand_a`` and the top 30 bits of ``rand_b``) that every call in the process increments, then 32 random bits.
A batch of n takes one such id and counts through its 32 random bits: the n ids share the time and counter,
so they are ordered among themselves and below the next call's id (whose counter is one higher), and they
stay as hard to guess across processes as the random bits of one id. The low bits start at most at
2**32 - n, so counting never carries into the counter.
"""

from __future__ import annotations

import uuid_utils

LOW_BITS = 32
LOW_MASK = (1 << LOW_BITS) - 1


def uuid7_strings(n: int) -> list[str]:
    """n canonical UUIDv7 strings, strictly increasing, from one ``uuid7()``."""
    first = uuid_utils.uuid7()
    text = str(first)
    if n == 1:
        return [text]
    prefix = text[:28]  # 8-4-4-4- and the first 4 hex digits of the last group: all but the low 32 bits
    low = min(first.int & LOW_MASK, LOW_MASK + 1 - n)
    return [f"{prefix}{v:08x}" for v in range(low, low + n)]


def uuid7_seconds(text: str) -> float | None:
    """The Unix time (ms precision) a UUIDv7 string was made at; None for anything else."""
    if len(text) != 36 or text[14] != "7" or text[8] != "-":
        return None
    try:
        return int(text[:8] + text[9:13], 16) / 1000.0
    except ValueError:
        return None
