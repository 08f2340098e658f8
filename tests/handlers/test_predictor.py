"""The predictor: one core object for /v1 and /v2 — resolve, decode, validate, score, calibrate, log, count."""

from __future__ import annotations

import json

import anyio
import numpy as np
import orjson
import pytest

from service.db.engine import make_engine
from service.db.inserters import EngineInserter
from service.db.predictions import find_predictions
from service.errors import InvalidInput, ModelNotFound, PayloadTooLarge, PredictionLogFull, ServiceError
from service.handlers.predictor import Rendered
from service.handlers.services import Services
from service.handlers.v1_codec import V1Codec
from tests.factories import digits, softmax

V1 = V1Codec()


def _predict(services: Services, body: dict[str, object], model: str = "digits", ref: str | None = None,
             codec: object = V1) -> Rendered:
    async def read() -> bytes:
        return orjson.dumps(body)

    async def call() -> Rendered:
        return await services.predictor.predict(codec, model, ref, read, {})  # type: ignore[arg-type]

    return anyio.run(call)


def _requests(services: Services, **labels: str) -> float | None:
    return services.metrics.registry.get_sample_value("calibserve_requests_total", labels)


def test_prediction_is_calibrated_logged_and_counted(services: Services) -> None:
    x, _ = digits()
    out = orjson.loads(_predict(services, {"instances": x[:5].tolist(), "tags": {"src": "t"}}).body)
    ids = [p["prediction_id"] for p in out["predictions"]]
    # independent reference: onnxruntime's logits through numpy softmax(z / T) from calibrator.json
    loaded = services.registry.resolve("digits")
    temperature = json.loads((loaded.directory / "calibrator.json").read_text())["params"]["temperature"]
    expected = softmax(loaded.classifier.scores(x[:5]) / temperature)
    np.testing.assert_allclose([p["probabilities"] for p in out["predictions"]], expected, atol=1e-6)
    assert services.writer.flush()
    with services.sessions() as session:
        stored = find_predictions(session=session, ids=ids)
    assert sorted(stored) == sorted(ids)
    assert _requests(services, endpoint="v1_predict", model="digits", version="1", code="200") == 1.0
    assert services.metrics.registry.get_sample_value(
        "calibserve_predictions_total", {"model": "digits", "version": "1", "calibrator": "1"}) == 5.0


def test_unknown_model_is_counted_once_under_one_label(services: Services) -> None:
    for name in ("a", "b", "c"):
        with pytest.raises(ModelNotFound):
            _predict(services, {"instances": [[0.0] * 64]}, model=name)
    assert _requests(services, endpoint="v1_predict", model="unknown", version="", code="404") == 3.0


def test_v2_error_is_counted_once(services: Services) -> None:
    """Before: the /v2 route and the error handler both counted a ServiceError."""
    with pytest.raises(InvalidInput):
        _predict(services, {"inputs": [{"name": "nope", "datatype": "FP32", "shape": [1, 64], "data": [0] * 64}]},
                 codec=services.v2_codec)
    assert _requests(services, endpoint="v2_infer", model="digits", version="1", code="400") == 1.0


@pytest.mark.parametrize("value", [1e39, -1e39, 3.5e38])
def test_values_beyond_float32_are_refused(services: Services, value: float) -> None:
    """1e39 is finite as float64 and infinite as the float32 the model computes in."""
    row = [0.0] * 64
    row[3] = value
    with pytest.raises(InvalidInput, match="instance 1 contains NaN, infinity or a value beyond"):
        _predict(services, {"instances": [[0.0] * 64, row]})


def test_errors_are_service_errors_with_a_status(services: Services) -> None:
    with pytest.raises(ServiceError) as info:
        _predict(services, {"instances": [[0.0] * 3]})
    assert info.value.status_code == 400 and "64 features" in info.value.message


def test_a_batch_over_the_row_limit_is_refused_before_it_is_served(services: Services) -> None:
    services.predictor.max_batch_rows = 10
    with pytest.raises(PayloadTooLarge, match="at most 10 rows"):
        _predict(services, {"instances": [[0.0] * 64] * 11})
    assert services.writer.depth() == 0 and services.writer.written == 0  # nothing was logged


def test_a_full_spool_refuses_with_503_and_retry_after(services: Services) -> None:
    """No id is returned for a row the log could not keep (before: served, then dropped and counted)."""
    services.writer.inserter = EngineInserter(make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none",
                                                          connect_args={"connect_timeout": 1}), 60)  # gone
    services.writer.max_spool_bytes = 4000
    served = 0
    with pytest.raises(PredictionLogFull) as info:
        for _ in range(100):
            _predict(services, {"instances": [[0.0] * 64] * 3})
            served += 3
    assert info.value.status_code == 503 and info.value.retry_after == 1
    assert services.writer.refused == 3 and services.writer.depth() == served > 0
