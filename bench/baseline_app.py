"""(b) The competent hand-written FastAPI endpoint: ``async def``, the raw body, orjson, no pydantic,
onnxruntime with one intra-op thread (the same logic as ``bench/baseline_asgi.py``, inside FastAPI).

An ``async def`` route runs on the event loop; a ``def`` route with a pydantic body would hop to the
thread pool and validate every float, 2–3× slower: a weak baseline.
Run: ``BASELINE_MODEL=model.onnx uvicorn bench.baseline_app:app --http httptools --no-access-log``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

from bench.serve.handwritten import from_environment

model = from_environment()
app = FastAPI()


@app.get("/health")
async def health() -> Response:
    return Response(b'{"ok":true}', media_type="application/json")


@app.post("/v2/models/digits/infer")
async def infer(request: Request) -> Response:
    status, body = model.infer(await request.body())
    return Response(body, status_code=status, media_type="application/json")
