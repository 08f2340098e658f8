"""The hostile-client cases, as data: ``bench/hostile.py`` sends them to a real uvicorn server and
``tests/api/test_input_bounds.py`` to the ASGI app on SQLite and PostgreSQL. Each names the status it must
get; none may get a 5xx."""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

BIG = 2**31  # one past PostgreSQL's INTEGER
ROW = [0.0] * 64  # the demo digits model: 64 features, input "input" (FP32)
CAL = "/v1/models/digits/versions/1/calibration"
ADMIN = "/v1/admin/models/digits/versions/1/calibrators"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    expected: int
    params: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    headers: Mapping[str, str | bytes] = field(default_factory=dict)  # bytes: sent as they are (UTF-8)
    admin: bool = False  # send the admin bearer token


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()  # the stdlib writes integers of any size (orjson stops at 64 bits)


def _v2(shape: list[int], data: Any = None, **parameters: Any) -> bytes:
    tensor: dict[str, Any] = {"name": "input", "datatype": "FP32", "shape": shape,
                              "data": data if data is not None else [0.0] * 64}
    return _json({"inputs": [tensor], "parameters": parameters} if parameters else {"inputs": [tensor]})


def _deep(depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        out = {"k": out}
    return out


def hostile_cases(prediction_id: str, max_body_bytes: int = 8 * 1024 * 1024) -> list[Case]:
    """Every case; ``prediction_id`` is one the server really returned (for the feedback cases)."""
    json_ct = {"content-type": "application/json"}
    pred = "/v1/models/digits/predict"
    infer = "/v2/models/digits/infer"
    one = _json({"instances": [ROW]})
    cases = [
        # --- versions: ASCII digits within INTEGER, never Unicode digits -------------------------------
        Case("version '²' (calibration)", "GET", "/v1/models/digits/versions/²/calibration", 404),
        Case("version '١' (v1 predict, not served as 1)", "POST", "/v1/models/digits/versions/١/predict", 404,
             body=one, headers=json_ct),
        Case("version '١' (v2 infer)", "POST", "/v2/models/digits/versions/١/infer", 404, body=_v2([1, 64])),
        Case("version 10^11 (v1 predict)", "POST", "/v1/models/digits/versions/99999999999/predict", 400,
             body=one, headers=json_ct),
        Case("version 2^31 (v2 metadata)", "GET", f"/v2/models/digits/versions/{BIG}", 400),
        Case("version 0 (v2 ready)", "GET", "/v2/models/digits/versions/0/ready", 400),
        Case("version '²' (v2 ready)", "GET", "/v2/models/digits/versions/²/ready", 404),
        Case("version '²' (history)", "GET", "/v1/models/digits/versions/²/calibrators", 404),
        Case("4,400-digit version", "GET", f"/v1/models/digits/versions/{'9' * 4400}/calibrators", 400),
        # --- calibration query: calibrator, bins, durations, dates -------------------------------------
        Case("calibrator='²'", "GET", CAL, 400, params={"calibrator": "²"}),
        Case("calibrator='١'", "GET", CAL, 400, params={"calibrator": "١"}),
        Case("calibrator=10^20", "GET", CAL, 400, params={"calibrator": str(10**20)}),
        Case("calibrator=2^31", "GET", CAL, 400, params={"calibrator": str(BIG)}),
        Case("bins='²'", "GET", CAL, 400, params={"bins": "²"}),
        Case("bins=10^30", "GET", CAL, 400, params={"bins": str(10**30)}),
        Case("bins=-5", "GET", CAL, 400, params={"bins": "-5"}),
        Case("reference_windows=10^30", "GET", CAL, 400, params={"reference_windows": str(10**30)}),
        Case("window=99999999999999999999w", "GET", CAL, 400, params={"window": "99999999999999999999w"}),
        Case("window='١h'", "GET", CAL, 400, params={"window": "١h"}),
        Case("window=400d (over the maximum)", "GET", CAL, 400, params={"window": "400d"}),
        Case("step=99999999999999999999w", "GET", CAL, 400, params={"window": "1h", "step": "99999999999999999999w"}),
        Case("start=0001-01-01T00:00:00", "GET", CAL, 400, params={"start": "0001-01-01T00:00:00"}),
        Case("end=9999-12-31T23:59:59-14:00", "GET", CAL, 400, params={"end": "9999-12-31T23:59:59-14:00"}),
        Case("start = 300-character garbage", "GET", CAL, 400, params={"start": "2" * 300}),
        Case("model name of 300 bytes (calibration)", "GET", f"/v1/models/{'m' * 300}/versions/1/calibration", 404),
        # --- admin: path and body integers, aliases, repository names ----------------------------------
        Case("activate calibrator 10^30", "POST", f"{ADMIN}/{10**30}/activate", 400, admin=True),
        Case("activate calibrator '²'", "POST", f"{ADMIN}/²/activate", 400, admin=True),
        Case("activate calibrator 2^31", "POST", f"{ADMIN}/{BIG}/activate", 400, admin=True),
        Case("activate unknown calibrator 12345", "POST", f"{ADMIN}/12345/activate", 404, admin=True),
        Case("refit version 10^30", "POST", f"/v1/admin/models/digits/versions/{10**30}/calibrators", 400,
             body=b"{}", admin=True),
        Case("refit seed 2^40", "POST", ADMIN, 400, body=_json({"seed": 2**40, "dry_run": True}), admin=True),
        Case("refit unknown field", "POST", ADMIN, 400, body=_json({"methd": "temperature"}), admin=True),
        Case("rollback version '²'", "POST", "/v1/admin/models/digits/versions/²/calibrators/rollback", 404,
             admin=True),
        Case("alias of 65 characters", "PUT", f"/v1/admin/models/digits/aliases/{'a' * 65}", 400,
             body=_json({"version": 1}), admin=True),
        Case("alias 'é'", "PUT", "/v1/admin/models/digits/aliases/é", 400, body=_json({"version": 1}), admin=True),
        Case("alias '12' (a number)", "PUT", "/v1/admin/models/digits/aliases/12", 400,
             body=_json({"version": 1}), admin=True),
        Case("alias body version 2^31", "PUT", "/v1/admin/models/digits/aliases/canary", 400,
             body=_json({"version": BIG}), admin=True),
        Case("alias body version '²'", "PUT", "/v1/admin/models/digits/aliases/canary", 400,
             body=_json({"version": "²"}), admin=True),
        Case("audit limit='²'", "GET", "/v1/admin/audit", 400, params={"limit": "²"}, admin=True),
        Case("audit limit=10^30", "GET", "/v1/admin/audit", 400, params={"limit": str(10**30)}, admin=True),
        Case("repository load, 300-byte name", "POST", f"/v2/repository/models/{'m' * 300}/load", 400, admin=True),
        Case("repository unload, 300-byte name", "POST", f"/v2/repository/models/{'m' * 300}/unload", 400,
             admin=True),
        Case("repository load '..%2F..%2Fetc'", "POST", "/v2/repository/models/..%2F..%2Fetc/load", 404, admin=True),
        Case("repository load '.hidden'", "POST", "/v2/repository/models/.hidden/load", 400, admin=True),
        Case("admin without a token", "GET", "/v1/admin/audit", 401),
        Case("admin with a wrong token", "GET", "/v1/admin/audit", 403, headers={"authorization": "Bearer nope"}),
        # --- predict bodies: tags, numbers, shapes, encodings ------------------------------------------
        Case("v1 tags of 100 kB", "POST", pred, 413, body=_json({"instances": [ROW], "tags": {"x": "y" * 100_000}}),
             headers=json_ct),
        Case("v1 tags 10 deep", "POST", pred, 400, body=_json({"instances": [ROW], "tags": _deep(10)}),
             headers=json_ct),
        Case("v1 tags with 1,000 keys", "POST", pred, 400,
             body=_json({"instances": [ROW], "tags": {f"k{i}": i for i in range(1000)}}), headers=json_ct),
        Case("v1 tags as a list", "POST", pred, 400, body=_json({"instances": [ROW], "tags": [1]}), headers=json_ct),
        Case("v1 value 1e39 (infinite in float32)", "POST", pred, 400,
             body=_json({"instances": [[1e39] + ROW[1:]]}), headers=json_ct),
        Case("v1 NaN literal", "POST", pred, 400, body=b'{"instances": [[NaN]]}', headers=json_ct),
        Case("v1 nesting 10,000 deep", "POST", pred, 400, body=b'{"instances": ' + b"[" * 10_000 + b"]" * 10_000
             + b"}", headers=json_ct),
        Case("v1 top_k=10^30", "POST", pred, 400, body=_json({"instances": [ROW], "top_k": 10**30}), headers=json_ct),
        Case("v1 body not JSON", "POST", pred, 400, body=b"\xff\xfe", headers=json_ct),
        Case("v2 shape [2^58, 64] (int64 product wraps to 0)", "POST", infer, 400, body=_v2([2**58, 64])),
        Case("v2 shape [2^63, 2^63]", "POST", infer, 400, body=_v2([2**63, 2**63])),
        Case("v2 shape [-1, 64]", "POST", infer, 400, body=_v2([-1, 64])),
        Case("v2 tags of 100 kB", "POST", infer, 413, body=_v2([1, 64], tags={"x": "y" * 100_000})),
        Case("v2 tags as a 10-deep JSON string", "POST", infer, 400,
             body=_v2([1, 64], tags=orjson.dumps(_deep(10)).decode())),
        Case("v2 Inference-Header-Content-Length '²'", "POST", infer, 400, body=_v2([1, 64]),
             headers={"inference-header-content-length": "²".encode()}),
        Case("v2 gzip bomb (64 MB of zeros)", "POST", infer, 413,
             body=gzip.compress(b"0" * (max_body_bytes * 8), compresslevel=9),
             headers={"content-encoding": "gzip"}),
        Case("v2 Content-Encoding 'br'", "POST", infer, 400, body=_v2([1, 64]), headers={"content-encoding": "br"}),
        Case("body over max_body_bytes", "POST", pred, 413, body=b"[" + b"0," * (max_body_bytes // 2) + b"0]",
             headers=json_ct),
        # --- feedback: per-item statuses, batch bounds ------------------------------------------------
        Case("feedback label '²' (item invalid)", "POST", "/v1/feedback", 200,
             body=_json({"items": [{"prediction_id": prediction_id, "label": "²"}]}), headers=json_ct),
        Case("feedback label 2^70 (item invalid)", "POST", "/v1/feedback", 200,
             body=_json({"items": [{"prediction_id": prediction_id, "label": 2**70}]}),
             headers=json_ct),
        Case("feedback id of 10 kB (item invalid)", "POST", "/v1/feedback", 200,
             body=_json({"items": [{"prediction_id": "x" * 10_000, "label": 1}]}), headers=json_ct),
        Case("feedback 5,001 items", "POST", "/v1/feedback", 413,
             body=_json({"items": [{"prediction_id": prediction_id, "label": 1}] * 5001}), headers=json_ct),
        Case("feedback items not a list", "POST", "/v1/feedback", 400, body=_json({"items": {}}), headers=json_ct),
        Case("feedback empty body", "POST", "/v1/feedback", 400, body=b"", headers=json_ct),
    ]
    return cases
