"""Served probabilities of unlabelled predictions, read back from the prediction log (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import create_engine, insert
from sqlalchemy.orm import Session

from service.db.tables import Feedback
from service.db.unlabelled import served_probabilities
from tests.monitoring.stored import store_predictions, synthetic_probs


def test_served_probabilities_leave_out_labelled_rows_and_keep_order(database_url: str) -> None:
    engine = create_engine(database_url)
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    probs, _ = synthetic_probs(40, seed=0)
    times = [t0 + timedelta(seconds=i) for i in range(40)]
    ids = store_predictions(engine, probs, times)
    store_predictions(engine, probs[:5], t0, calibrator_version=2)  # another calibrator: never read
    labelled = set(range(0, 40, 3))
    with engine.begin() as conn:
        conn.execute(insert(Feedback), [{"prediction_id": ids[i], "label": 0, "received_at": t0} for i in labelled])
    keep = [i for i in range(40) if i not in labelled]
    with Session(engine) as session:
        newest = served_probabilities(session=session, model="digits", version=1, calibrator_version=1, start=t0,
                                      end=t0 + timedelta(hours=1), limit=10)
        np.testing.assert_array_equal(newest, probs[keep[::-1][:10]].astype(np.float64))
        oldest = served_probabilities(session=session, model="digits", version=1, calibrator_version=1, start=t0,
                                      end=t0 + timedelta(seconds=20), limit=100, newest_first=False)
        np.testing.assert_array_equal(oldest, probs[[i for i in keep if i < 20]].astype(np.float64))
        everything = served_probabilities(session=session, model="digits", version=1, calibrator_version=1, start=t0,
                                          end=t0 + timedelta(hours=1), limit=100, unlabelled_only=False)
        assert everything.shape == (40, 10)
        empty = served_probabilities(session=session, model="digits", version=2, calibrator_version=1, start=t0,
                                     end=t0 + timedelta(hours=1), limit=10)
        assert empty.shape == (0, 0)
    engine.dispose()
