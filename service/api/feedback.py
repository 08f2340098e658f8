"""Ground-truth feedback for earlier predictions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.api.deps import ServicesDep
from service.api.http import JSONBytes, read_body
from service.api.openapi import BODY, errors, json_body
from service.api.schemas import FEEDBACK_REQUEST, FeedbackResponse
from service.errors import InvalidInput
from service.handlers.json_body import json_object

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post("/feedback", responses={200: {"model": FeedbackResponse}, **errors(*BODY, 503)},
             openapi_extra=json_body(FEEDBACK_REQUEST))
async def post_feedback(request: Request, services: ServicesDep) -> Response:
    """Labels for earlier predictions: per-item accepted / duplicate / conflict / unknown / invalid.

    `unknown` is retryable: no prediction with that id is stored yet. A label for a prediction made less than
    `CALIBSERVE_FEEDBACK_RECENT_WAIT_SECONDS` (1 s) ago that another worker or replica has not stored yet is
    looked up again until the prediction is that old, so such an answer can take up to that long."""
    body = json_object(await read_body(request, services.settings.max_body_bytes))
    items = body.get("items")
    if not isinstance(items, list):
        raise InvalidInput("items must be a list of {prediction_id, label}")
    pairs = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "prediction_id" not in item or "label" not in item:
            raise InvalidInput(f"items[{i}] must be an object with prediction_id and label")
        pairs.append((item["prediction_id"], item["label"]))
    results = await services.feedback.submit(pairs)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return JSONBytes({"counts": counts, "items": [{k: v for k, v in vars(r).items() if v is not None}
                                                  for r in results]})
