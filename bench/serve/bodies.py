"""Request bodies, one file per (protocol, batch): wrk's Lua script POSTs the file as it is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.serve.model import FEATURES

# Every server returns the probabilities and the predicted class, the same work: calibserve by name
# (it would return four outputs by default), the hand-written endpoints always, MLServer's sklearn runtime
# by its method names.
OUTPUTS = [{"name": "probabilities"}, {"name": "label"}]
MLSERVER_OUTPUTS = [{"name": "predict_proba"}, {"name": "predict"}]


def v2_tensor(x: np.ndarray, **parameters: object) -> dict[str, object]:
    spec: dict[str, object] = {"name": "input", "shape": list(x.shape), "datatype": "FP32"}
    if parameters:
        spec["parameters"] = parameters
    return spec


def write_bodies(work: Path, rows: np.ndarray, batches: tuple[int, ...]) -> dict[str, dict[int, tuple[Path, str, str]]]:
    """kind → batch → (file, content type, Inference-Header-Content-Length) for kinds
    ``v1``, ``v2`` (JSON, two outputs), ``v2-mlserver`` (JSON, predict_proba + predict), ``v2-binary``."""
    out: dict[str, dict[int, tuple[Path, str, str]]] = {"v1": {}, "v2": {}, "v2-mlserver": {}, "v2-binary": {}}
    for b in batches:
        x = np.resize(rows, (b, FEATURES)).astype(np.float32)
        flat = x.reshape(-1).tolist()
        files = {kind: work / f"{kind}_{b}.{'bin' if kind == 'v2-binary' else 'json'}" for kind in out}
        files["v1"].write_text(json.dumps({"instances": x.tolist()}))
        files["v2"].write_text(json.dumps({"inputs": [{**v2_tensor(x), "data": flat}], "outputs": OUTPUTS}))
        files["v2-mlserver"].write_text(json.dumps({"inputs": [{**v2_tensor(x), "data": flat}],
                                                   "outputs": MLSERVER_OUTPUTS}))
        header = json.dumps({"inputs": [v2_tensor(x, binary_data_size=x.nbytes)],
                             "outputs": [{**o, "parameters": {"binary_data": True}} for o in OUTPUTS]}).encode()
        files["v2-binary"].write_bytes(header + x.tobytes())
        for kind in ("v1", "v2", "v2-mlserver"):
            out[kind][b] = (files[kind], "application/json", "")
        out["v2-binary"][b] = (files["v2-binary"], "application/octet-stream", str(len(header)))
    return out
