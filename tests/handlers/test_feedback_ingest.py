"""Feedback ingest on the real databases: isolation between concurrent callers, statuses, statistics."""

from __future__ import annotations

import threading
import time
import uuid

import anyio
import numpy as np
import orjson
import pytest
from sqlalchemy import func, select

from service.app import build_services
from service.db.tables import CalibrationTotals, Feedback
from service.errors import InvalidInput
from service.handlers.feedback_ingest import ItemResult
from service.handlers.services import Services
from service.handlers.v1_codec import V1Codec
from service.settings import Settings
from tests.factories import digits


def _serve(services: Services, n: int) -> list[str]:
    x, _ = digits()

    async def read() -> bytes:
        return orjson.dumps({"instances": x[:n].tolist()})

    async def call() -> list[str]:
        out = await services.predictor.predict(V1Codec(), "digits", None, read, {})
        return [p["prediction_id"] for p in orjson.loads(out.body)["predictions"]]

    return anyio.run(call)


def _count(services: Services, column: object) -> float:
    with services.sessions() as session:
        return float(session.execute(select(func.coalesce(func.sum(column), 0))).scalar_one())


def test_concurrent_callers_with_poison_lose_nothing(services: Services) -> None:
    """32 concurrent requests, every tenth poisoned (a Unicode-digit label, or an empty batch): before,
    one bad item failed the whole coalesced transaction and legitimate labels went unstored."""
    ids = _serve(services, 320)
    _, y = digits()
    outcomes: dict[int, list[ItemResult] | Exception] = {}

    async def client(i: int) -> None:
        chunk = list(zip(ids[i * 10:(i + 1) * 10], y[i * 10:(i + 1) * 10].tolist(), strict=True))
        if i % 10 == 3:
            chunk[0] = (chunk[0][0], "²")
        if i % 10 == 7:
            chunk = []
        try:
            outcomes[i] = await services.feedback.submit(chunk)
        except InvalidInput as exc:
            outcomes[i] = exc

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(32):
                tg.start_soon(client, i)

    anyio.run(main)
    accepted = 0
    for i, out in outcomes.items():
        if i % 10 == 7:
            assert isinstance(out, InvalidInput)
            continue
        assert isinstance(out, list)
        statuses = [r.status for r in out]
        assert statuses.count("accepted") == (9 if i % 10 == 3 else 10), (i, statuses)
        accepted += statuses.count("accepted")
    with services.sessions() as session:
        stored = session.execute(select(func.count()).select_from(Feedback)).scalar_one()
    assert stored == accepted == 32 * 10 - 3 * 10 - 3  # 3 empty requests, 3 poisoned items
    assert _count(services, CalibrationTotals.count) == accepted  # statistics equal the rows


def test_same_id_in_two_concurrent_requests_keeps_the_first_label(services: Services) -> None:
    (pid,) = _serve(services, 1)

    async def main() -> list[list[ItemResult]]:
        results: list[list[ItemResult]] = [[], []]

        async def one(k: int, label: int) -> None:
            results[k] = await services.feedback.submit([(pid, label)])

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, 0, 1)
            tg.start_soon(one, 1, 2)
        return results

    first, second = anyio.run(main)
    statuses = sorted([first[0].status, second[0].status])
    assert statuses == ["accepted", "conflict"]
    with services.sessions() as session:
        assert session.execute(select(func.count()).select_from(Feedback)).scalar_one() == 1


def test_statuses_in_one_request(services: Services) -> None:
    a, b = _serve(services, 2)
    results = services.feedback.submit_sync([
        (a, 0), (a, 0), (a, 1), (b, "²"), ("0192f3a4-5b6c-7d8e-9f00-112233445566", 0), ("nope", 0), (b, 99)])
    assert [r.status for r in results] == ["accepted", "duplicate", "conflict", "invalid", "unknown", "invalid",
                                           "invalid"]
    again = services.feedback.submit_sync([(a, 0), (a, 5)])
    assert [r.status for r in again] == ["duplicate", "conflict"] and again[1].stored_label == 0


@pytest.mark.parametrize("path", ["in the caller's thread", "through the group-commit thread"])
def test_a_label_that_overtook_its_row_is_found_after_a_flush(services: Services, path: str) -> None:
    """The writer has not shipped yet: the ingest flushes it (once for the whole group) and looks again."""
    services.writer.flush_seconds = 30.0  # rows would sit in the spool for 30 s
    services.writer.batch_size = 10**6
    first, second = _serve(services, 1), _serve(services, 1)
    if path == "in the caller's thread":
        assert [r.status for r in services.feedback.submit_sync([(first[0], 0), (second[0], 1)])] == ["accepted"] * 2
        return

    async def main() -> list[list[ItemResult]]:
        out: list[list[ItemResult]] = [[], []]

        async def one(k: int, pid: str) -> None:
            out[k] = await services.feedback.submit([(pid, k)])

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, 0, first[0])
            tg.start_soon(one, 1, second[0])
        return out

    assert [[r.status for r in rs] for rs in anyio.run(main)] == [["accepted"], ["accepted"]]


def _outcomes(services: Services) -> dict[str, float]:
    reg = services.metrics.registry
    return {o: reg.get_sample_value("calibserve_feedback_items_total", {"model": m, "outcome": o}) or 0.0
            for o, m in (("accepted", "digits"), ("unknown", "unknown"))}


@pytest.mark.parametrize(("wait", "others"), [(0.0, 0), (1.5, 0), (1.5, 119)])
def test_a_label_for_another_workers_unshipped_prediction_waits_for_its_round(services: Services,
                                                                              settings: Settings, wait: float,
                                                                              others: int) -> None:
    """A sibling (another worker or replica on the same database) served the prediction and ships it 0.3 s
    later: this process cannot flush that log. With a wait, the label is looked up again until it is found
    (or the prediction is ``wait`` old) and is accepted, counted once; without one it is ``unknown``. With 119
    labels of this process's own beside it, the request takes the large-request path (its own transaction in a
    worker thread) and waits the same way."""
    services.feedback.recent_wait_seconds = wait
    sibling = build_services(settings.model_copy(update={"spool_dir": settings.spool_dir / "sibling",
                                                         "log_flush_seconds": 30.0}))
    sibling.registry.load_all()
    sibling.writer.start()
    own = _serve(services, others) if others else []
    try:
        (pid,) = _serve(sibling, 1)
        shipper = threading.Timer(0.3, sibling.writer.flush)  # the sibling's next shipping round
        shipper.start()
        started = time.monotonic()
        *mine, result = anyio.run(services.feedback.submit, [(p, 0) for p in own] + [(pid, 0)])
        waited = time.monotonic() - started
        shipper.join()
    finally:
        sibling.writer.stop()
        sibling.engine.dispose()
    assert [r.status for r in mine] == ["accepted"] * others
    if wait == 0:
        assert result.status == "unknown" and waited < 0.3
        assert _outcomes(services) == {"accepted": 0, "unknown": 1}
    else:
        # looked up again after 0.1, 0.3, 0.5 s: found after the round at 0.3 s, well before the 1.5 s bound
        assert result.status == "accepted" and 0.3 < waited < 1.0, waited
        assert _outcomes(services) == {"accepted": 1 + others, "unknown": 0}  # the first look-up is not counted


def test_only_recent_missing_ids_wait(services: Services) -> None:
    """An old UUIDv7, a UUIDv4 (no time) and a time in the future are answered at once; a recent one that is
    never stored waits its turn and is then ``unknown``, in the same answer, in request order."""
    services.feedback.recent_wait_seconds = 0.8
    old = "0192f3a4-5b6c-7d8e-9f00-112233445566"  # 2024
    now_ms = int(time.time() * 1000)
    recent = f"{now_ms:012x}"[:8] + "-" + f"{now_ms:012x}"[8:] + "-7000-8000-000000000001"
    future = f"{now_ms + 3_600_000:012x}"[:8] + "-" + f"{now_ms + 3_600_000:012x}"[8:] + "-7000-8000-000000000001"
    (known,) = _serve(services, 1)
    started = time.monotonic()
    quick = anyio.run(services.feedback.submit, [(old, 0), (str(uuid.uuid4()), 0), (future, 0), (known, 0)])
    assert time.monotonic() - started < 0.5
    assert [r.status for r in quick] == ["unknown", "unknown", "unknown", "accepted"]
    started = time.monotonic()
    slow = anyio.run(services.feedback.submit, [(recent, 0), (known, 0), (recent, 1)])
    assert time.monotonic() - started > 0.6
    assert [r.status for r in slow] == ["unknown", "duplicate", "unknown"]
    assert _outcomes(services)["unknown"] == 5


def test_the_wait_is_bounded_even_if_the_wall_clock_stops(services: Services,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait ends ``recent_wait_seconds`` after it began by the monotonic clock: an id stays "recent" for ever
    under a wall clock that stands still (or is set back), and must still get its answer."""
    services.feedback.recent_wait_seconds = 0.6
    frozen = time.time()
    now_ms = int(frozen * 1000)
    recent = f"{now_ms:012x}"[:8] + "-" + f"{now_ms:012x}"[8:] + "-7000-8000-000000000002"
    monkeypatch.setattr(time, "time", lambda: frozen)
    started = time.monotonic()
    (result,) = anyio.run(services.feedback.submit, [(recent, 0)])
    assert result.status == "unknown" and 0.5 < time.monotonic() - started < 2.0


@pytest.mark.parametrize("n", [0, 5001])
def test_batch_size_bounds(services: Services, n: int) -> None:
    with pytest.raises(Exception, match="at least one|at most 5000"):
        services.feedback.submit_sync([("x", 0)] * n)


def test_bins_are_counted_from_the_committed_statistics(services: Services) -> None:
    ids = _serve(services, 50)
    _, y = digits()
    services.feedback.submit_sync(list(zip(ids, y[:50].tolist(), strict=True)))
    reg = services.metrics.registry
    counts = [reg.get_sample_value("calibserve_calibration_bin_count_total",
                                   {"model": "digits", "version": "1", "calibrator": "1", "bin": str(b)}) or 0.0
              for b in range(services.settings.ece_bins)]
    assert np.isclose(sum(counts), 50.0)
