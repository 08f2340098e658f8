"""The baseline a user writes in ten minutes: FastAPI + pydantic + onnxruntime, softmax, nothing else.

No calibration, no prediction log, no metrics, no ids. ``BASELINE_MODEL`` is the ONNX file to serve.
Run: ``BASELINE_MODEL=models/digits/1/model.onnx uvicorn bench.baseline_app:app``.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel

options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(os.environ.get("BASELINE_MODEL", "models/digits/1/model.onnx"), options,
                               providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
app = FastAPI()


class PredictRequest(BaseModel):
    instances: list[list[float]]


@app.get("/health")
def health() -> dict[str, bool]:
    return {"ok": True}


@app.post("/predict")
def predict(request: PredictRequest) -> dict[str, list[float] | list[list[float]] | list[int]]:
    x = np.asarray(request.instances, dtype=np.float32)
    (logits,) = session.run(None, {input_name: x})
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    return {"predictions": probs.argmax(axis=1).tolist(), "probabilities": probs.tolist()}
