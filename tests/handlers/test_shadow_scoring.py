"""Shadow scoring in feedback ingest, on the real databases: the paired sums written with the labels equal a
hand computation in numpy on the stored logits and scikit-learn's per-row log loss; a retried batch adds
nothing; the shadow never enters the served calibrator's statistics; the policy promotes only on evidence."""

from __future__ import annotations

import anyio
import numpy as np
import orjson
import pytest
from sklearn.metrics import log_loss
from sqlalchemy import func, select

from service.db import calibrators as calibrator_rows
from service.db.predictions import find_predictions
from service.db.tables import CalibrationTotals, ShadowEvidence, ShadowPairBin, ShadowPairStat
from service.handlers.services import Services
from service.handlers.shadow import ShadowOptions
from service.handlers.v1_codec import V1Codec
from tests.factories import digits, softmax

CLIP = 2.0  # Settings.shadow_clip's default


def _serve(services: Services, n: int, offset: int = 0) -> list[str]:
    x, _ = digits()

    async def read() -> bytes:
        return orjson.dumps({"instances": x[offset:offset + n].tolist()})

    async def call() -> list[str]:
        out = await services.predictor.predict(V1Codec(), "digits", None, read, {})
        return [p["prediction_id"] for p in orjson.loads(out.body)["predictions"]]

    return anyio.run(call)


def _temperature(services: Services, t: float, *, activate: bool = False) -> int:
    with services.sessions() as session:
        row = calibrator_rows.insert_calibrator(session=session, model="digits", version=1, method="temperature",
                                                params={"temperature": t}, source="refit", created_by="test")
        if activate:
            calibrator_rows.activate_calibrator(session=session, row=row)
        session.commit()
        cv = row.calibrator_version
    services.registry.sync_calibrators()
    return cv




def _pair_sums(services: Services) -> tuple[float, ...]:
    p = ShadowPairStat
    with services.sessions() as session:
        cols = (p.count, p.nll_sum, p.nll_sq_sum, p.nll_clipped_sum, p.brier_sum, p.brier_sq_sum, p.nll_active_sum)
        return tuple(float(v) for v in session.execute(select(*[func.coalesce(func.sum(c), 0.0) for c in cols])
                                                       ).one())


def test_paired_sums_equal_numpy_and_sklearn_on_the_stored_logits(services: Services) -> None:
    active = _temperature(services, 0.7, activate=True)
    shadow = _temperature(services, 2.5)
    services.shadows.put(model="digits", version=1, calibrator_version=shadow, options=ShadowOptions(), actor="t")
    ids = _serve(services, 240)
    _, y_all = digits()
    y = y_all[:240]
    services.feedback.submit_sync(list(zip(ids, y.tolist(), strict=True)))

    with services.sessions() as session:
        stored = find_predictions(session=session, ids=ids)
    assert {stored[i].calibrator_version for i in ids} == {active}
    z = np.stack([stored[i].logits for i in ids]).astype(np.float64)
    pa, ps = softmax(z / 0.7), softmax(z / 2.5)
    rows = np.arange(len(y))
    d = -np.log(pa[rows, y]) + np.log(ps[rows, y])
    onehot = np.eye(10)[y]
    brier = ((pa - onehot) ** 2).sum(1) - ((ps - onehot) ** 2).sum(1)
    n, total, squares, clipped, brier_total, brier_sq, nll_active = _pair_sums(services)
    assert n == 240
    assert total == pytest.approx(d.sum(), rel=1e-9)
    assert squares == pytest.approx((d * d).sum(), rel=1e-9)
    assert clipped == pytest.approx(np.clip(d, -CLIP, CLIP).sum(), rel=1e-9)
    assert brier_total == pytest.approx(brier.sum(), rel=1e-9, abs=1e-9)
    assert brier_sq == pytest.approx((brier * brier).sum(), rel=1e-9)
    # scikit-learn, row by row (log_loss of one row = that row's NLL)
    per_row = [log_loss([y[i]], pa[i:i + 1], labels=range(10)) - log_loss([y[i]], ps[i:i + 1], labels=range(10))
               for i in range(len(y))]
    assert total == pytest.approx(float(np.sum(per_row)), rel=1e-9)
    assert nll_active == pytest.approx(log_loss(y, pa, labels=range(10), normalize=False), rel=1e-9)

    with services.sessions() as session:
        b = ShadowPairBin
        sides = dict(session.execute(select(b.side, func.sum(b.count)).group_by(b.side)).all())
        evidence = session.execute(select(ShadowEvidence.count, ShadowEvidence.nll_sum, ShadowEvidence.active_version)
                                   ).one()
        served = dict(session.execute(select(CalibrationTotals.calibrator_version, func.sum(CalibrationTotals.count))
                                      .group_by(CalibrationTotals.calibrator_version)).all())
    assert sides == {0: 240.0, 1: 240.0}
    assert evidence[0] == 240 and evidence[1] == pytest.approx(d.sum(), rel=1e-9) and evidence[2] == active
    assert served == {active: 240.0}  # the shadow never enters the served calibrator's statistics

    # a retried batch stores nothing new, so it scores nothing new (same transaction as the labels)
    services.feedback.submit_sync(list(zip(ids, y.tolist(), strict=True)))
    assert _pair_sums(services)[0] == 240


def test_no_shadow_no_rows_and_the_policy_promotes_only_a_better_shadow(services: Services) -> None:
    ids = _serve(services, 50)
    _, y = digits()
    services.feedback.submit_sync(list(zip(ids, y[:50].tolist(), strict=True)))
    assert _pair_sums(services)[0] == 0.0  # no shadow: nothing scored

    wrong = _temperature(services, 6.0, activate=True)  # far too flat (the card's fitted T is ~0.6)
    equal = _temperature(services, 6.0)  # the same calibrator under another version number
    right = _temperature(services, 0.6)
    policy = ShadowOptions(policy="if_better_in_shadow")
    services.shadows.put(model="digits", version=1, calibrator_version=equal, options=policy, actor="t")
    services.shadows.put(model="digits", version=1, calibrator_version=right, options=policy, actor="t")
    promoted_after = None
    for start in range(50, 1250, 50):
        ids = _serve(services, 50, offset=start)
        services.feedback.submit_sync(list(zip(ids, y[start:start + 50].tolist(), strict=True)))
        with services.sessions() as session:
            now = calibrator_rows.get_active(session=session, model="digits", version=1)
        assert now is not None
        if now.calibrator_version != wrong:
            promoted_after = start  # labels scored while the shadows were on
            break
    assert promoted_after is not None and now.calibrator_version == right
    assert _pair_sums(services)[0] >= promoted_after  # both shadows scored each label, until the promotion
    listed = services.shadows.list(model="digits", version=1)
    assert [s["calibrator_version"] for s in listed["shadows"]] == [equal]  # the promoted one left the shadows
    assert services.registry.resolve("digits", 1).serving.calibrator_version == right  # type: ignore[union-attr]
    entries = services.lifecycle.audit_log(limit=5)
    assert entries[0]["action"] == "promote_shadow" and entries[0]["actor"] == "policy:if_better_in_shadow"
    detail = orjson.loads(entries[0]["detail"])
    assert detail["calibrator_version"] == right and detail["lower_bound"] > 0 and detail["previous"] == wrong
