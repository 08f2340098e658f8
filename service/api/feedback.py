"""Ground-truth feedback for earlier predictions."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from service.api.deps import ServicesDep
from service.api.http import JSONBytes, json_object, read_body
from service.errors import InvalidInput
from service.handlers.feedback import submit_feedback

router = APIRouter(prefix="/v1", tags=["feedback"])
SMALL_BATCH = 100


@router.post("/feedback")
async def post_feedback(request: Request, services: ServicesDep) -> Response:
    """Labels for earlier predictions: per-item accepted / duplicate / conflict / unknown / invalid."""
    body = json_object(await read_body(request, services.settings.max_body_bytes))
    items = body.get("items")
    if not isinstance(items, list):
        raise InvalidInput("items must be a list of {prediction_id, label}")
    pairs = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "prediction_id" not in item or "label" not in item:
            raise InvalidInput(f"items[{i}] must be an object with prediction_id and label")
        pairs.append((item["prediction_id"], item["label"]))
    batcher = services.feedback_batcher
    if batcher is not None and 0 < len(pairs) < SMALL_BATCH:
        # small requests share one transaction with their concurrent peers (group commit); each still
        # answers only after the commit that holds its labels
        results = await asyncio.wrap_future(batcher.submit(pairs))
    else:
        results = await run_in_threadpool(submit_feedback, services, pairs)  # DB work off the event loop
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return JSONBytes({"counts": counts, "items": [{k: v for k, v in vars(r).items() if v is not None}
                                                  for r in results]})
