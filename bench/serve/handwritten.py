"""The logic a competent engineer writes by hand for a V2 JSON classifier endpoint, shared by the
plain-ASGI ceiling (``bench/baseline_asgi.py``) and the FastAPI baseline (``bench/baseline_app.py``) so
the two differ only in the framework around it.

orjson in and out (numpy arrays serialised natively), one onnxruntime session with one intra-op thread,
the skl2onnx graph's own probabilities and labels: no calibration, no prediction log, no metrics, no ids.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument

DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


class Handwritten:
    def __init__(self, model_path: str) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]  # skl2onnx: label, probabilities

    def infer(self, raw: bytes) -> tuple[int, bytes]:
        """V2 JSON request bytes → (status, response bytes); 400 with ``{"error": …}`` on a bad body."""
        try:
            spec = orjson.loads(raw)["inputs"][0]
            x = np.asarray(spec["data"], dtype=np.float32).reshape(spec["shape"])
            outputs = self.session.run(None, {self.input_name: x})
        except (KeyError, IndexError, TypeError, ValueError, Fail, InvalidArgument) as exc:  # JSONDecodeError too
            return 400, orjson.dumps({"error": f"bad request: {exc}"})
        body: dict[str, Any] = {"model_name": "digits", "outputs": [
            {"name": name, "shape": list(out.shape), "datatype": "FP32" if out.dtype == np.float32 else "INT64",
             "data": out.reshape(-1)} for name, out in zip(self.output_names, outputs, strict=True)]}
        return 200, orjson.dumps(body, option=DUMP_OPTIONS)


def from_environment() -> Handwritten:
    return Handwritten(os.environ["BASELINE_MODEL"])
