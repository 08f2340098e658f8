"""method="auto": picks by held-out NLL, keeps the identity when nothing beats it."""

from __future__ import annotations

import numpy as np

from service.calibration import CalibrationInputError, calibrator_from_dict, make_calibrator
from tests.calibration.factories import overconfident_logits, sample_labels, softmax


def test_picks_a_real_calibrator_for_an_overconfident_model() -> None:
    z, y = overconfident_logits(3000, 5, seed=0, temperature=2.0)
    cal = make_calibrator("auto", candidates=("temperature", "vector", "histogram")).fit(z, y)
    assert cal.chosen_.method in {"temperature", "vector"}
    assert cal.scores_[cal.chosen_.method] < cal.scores_["identity"]
    assert min(cal.scores_, key=cal.scores_.__getitem__) == cal.chosen_.method


def test_keeps_identity_when_nothing_beats_it() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(2000, 4)) * 2
    y = sample_labels(softmax(z), rng)  # already calibrated
    cal = make_calibrator("auto", candidates=("histogram",)).fit(z, y)
    assert cal.chosen_.method == "identity"
    np.testing.assert_allclose(cal.predict_proba(z), softmax(z), atol=1e-15)


def test_skips_candidates_that_cannot_fit() -> None:
    z, y = overconfident_logits(600, 3, seed=2)
    cal = make_calibrator("auto", candidates=("platt", "temperature")).fit(z, y)
    assert "platt" not in cal.scores_ and cal.chosen_.method == "temperature"


def test_round_trip_restores_the_chosen_calibrator() -> None:
    z, y = overconfident_logits(1000, 4, seed=3)
    cal = make_calibrator("auto").fit(z, y)
    again = calibrator_from_dict(cal.to_dict())
    np.testing.assert_array_equal(again.predict_proba(z), cal.predict_proba(z))
    assert again.to_dict()["params"]["chosen"]["method"] == cal.chosen_.method


def test_unknown_candidate_is_rejected() -> None:
    try:
        make_calibrator("auto", candidates=("magic",))
    except CalibrationInputError as exc:
        assert "magic" in str(exc)
    else:
        raise AssertionError("expected CalibrationInputError")
