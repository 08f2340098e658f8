"""The calibrator lifecycle on the real databases: re-fit, activate, roll back — each one transaction."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from service.errors import NoPreviousCalibrator, UnknownCalibrationMethod
from service.handlers.refit_options import RefitOptions
from service.handlers.services import Services
from tests.factories import digits
from tests.handlers.test_feedback_ingest import _serve


def _labelled(services: Services, n: int = 300) -> None:
    ids = _serve(services, n)
    _, y = digits()
    results = services.feedback.submit_sync(list(zip(ids, y[:n].tolist(), strict=True)))
    assert {r.status for r in results} == {"accepted"}


def test_unknown_method_is_a_400_that_names_the_valid_ones(services: Services) -> None:
    """Before: a misspelled method became a 422 'not enough data'."""
    with pytest.raises(UnknownCalibrationMethod) as info:
        services.lifecycle.refit(model="digits", version="1", options=RefitOptions(method="temperatur"), actor="t")
    assert info.value.status_code == 400
    assert "temperature" in info.value.message and "focal_temperature" in info.value.message


def test_refit_evaluates_on_the_held_out_rows_of_its_own_split(services: Services) -> None:
    _labelled(services)
    out = services.lifecycle.refit(model="digits", version="1", options=RefitOptions(
        method="temperature", activate="always", min_labels=50, min_per_class=1), actor="t")
    evaluation = out["evaluation"]
    assert evaluation["n_fit"] + evaluation["n_eval"] == out["n_labels"] == 300
    assert evaluation["active"]["n"] == evaluation["n_eval"]  # the active calibrator scored on the same rows
    assert out["activated"] and services.registry.resolve("digits").serving.calibrator_version == 2  # type: ignore[union-attr]


def _transactions(services: Services) -> list[list[str]]:
    """Statements per transaction, recorded from the engine's own events."""
    log: list[list[str]] = []

    @event.listens_for(services.engine, "begin")
    def _begin(conn: Any) -> None:
        log.append([])

    @event.listens_for(services.engine, "before_cursor_execute")
    def _execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if log:
            log[-1].append(statement.split()[0].upper())

    return log


def test_rollback_reads_and_switches_in_one_transaction(services: Services) -> None:
    _labelled(services)
    services.lifecycle.refit(model="digits", version="1", options=RefitOptions(
        activate="always", min_labels=50, min_per_class=1), actor="t")
    log = _transactions(services)
    out = services.lifecycle.rollback(model="digits", version="1", actor="t")
    assert out["calibrator_version"] == 1 and out["previous_calibrator_version"] == 2
    writes = [t for t in log if "UPDATE" in t]
    assert len(writes) == 1 and writes[0][0] == "SELECT"  # the read of the active row is in the same one
    assert services.registry.resolve("digits").serving.calibrator_version == 1  # type: ignore[union-attr]


def test_rollback_with_nothing_before_is_a_409(services: Services) -> None:
    with pytest.raises(NoPreviousCalibrator) as info:
        services.lifecycle.rollback(model="digits", version="1", actor="t")
    assert info.value.status_code == 409
