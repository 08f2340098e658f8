"""``api/control_proxy.py``: which routes go to the control process, and when a label makes the serving
process flush its spool before forwarding (the forwarding itself: tests/e2e/test_control_process.py)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson

from service.api.control_proxy import ControlProxy, may_name_spooled
from service.app import create_app
from service.db.engine import make_engine
from service.db.writer import PredictionWriter
from service.handlers.ids import uuid7_strings
from service.settings import Settings


def test_it_claims_feedback_and_the_calibration_queries_and_nothing_else(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", model_repository=tmp_path))
    claimed = set()
    for template, operations in app.openapi()["paths"].items():  # every documented operation
        path = re.sub(r"\{[^}]+\}", "x", template)
        claimed |= {(m.upper(), template) for m in operations if ControlProxy.claims(m.upper(), path)}
    base = "/v1/models/{model}/versions/{version}"
    assert claimed == {("POST", "/v1/feedback"), ("GET", f"{base}/calibration"), ("GET", f"{base}/calibrators"),
                       ("GET", f"{base}/label_shift"), ("GET", f"{base}/shadows"),
                       ("GET", f"{base}/calibrators/{{calibrator_version}}/compare")}
    assert not ControlProxy.claims("POST", "/v1/models/digits/predict")
    assert not ControlProxy.claims("GET", "/v1/models/a/b/versions/1/calibration")  # one segment per name


def body(*ids: object) -> bytes:
    return orjson.dumps({"items": [{"prediction_id": i, "label": 0} for i in ids]})


def test_a_label_for_an_id_made_after_the_last_shipping_round_asks_for_a_flush(tmp_path: Path) -> None:
    writer = PredictionWriter(make_engine(f"sqlite:///{tmp_path / 'x.db'}"), spool_dir=tmp_path)
    fresh = uuid7_strings(1)[0]
    made = int(fresh[:8] + fresh[9:13], 16) / 1000
    writer.shipped_before = made - 1.0  # the last completed round started a second before the id was made
    assert may_name_spooled(body("not-an-id", fresh), {}, writer)
    writer.shipped_before = made + 1.0  # a round that started after it shipped it
    assert not may_name_spooled(body(fresh), {}, writer)
    assert may_name_spooled(body(fresh), {"content-encoding": "gzip"}, writer)  # not read here: flush to be safe
    assert not may_name_spooled(b"{broken", {}, writer)  # the control process answers the 400
    assert not may_name_spooled(b"[1, 2]", {}, writer)
    assert not may_name_spooled(orjson.dumps({"items": "x"}), {}, writer)
    assert not may_name_spooled(body(17, None), {}, writer)
