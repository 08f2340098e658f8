import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import accuracy_score, log_loss

from service.calibration import calibrator_from_dict
from service.training.evaluation import held_out_metrics, initial_calibrator


def _logits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    logits = rng.normal(size=(n, 3)) + 3.0 * np.eye(3)[labels]  # informative, over-confident-ish
    return logits, labels


def test_held_out_metrics_match_scikit_learn():
    logits, labels = _logits(200)
    m = held_out_metrics(logits, labels)
    probs = softmax(logits, axis=1)
    assert m.accuracy == pytest.approx(accuracy_score(labels, probs.argmax(1)))
    assert m.nll == pytest.approx(log_loss(labels, probs))
    assert 0 <= m.ece <= 1 and 0 <= m.adaptive_ece <= 1


def test_initial_calibrator_payload_round_trips():
    logits, labels = _logits(300)
    payload = initial_calibrator(logits * 10, labels, method="temperature")
    assert payload["method"] == "temperature" and payload["evaluation"]["n_eval"] == 90
    assert payload["params"]["temperature"] > 1  # the logits were scaled up: TS cools them down
    calibrator_from_dict(payload)


def test_small_validation_split_is_fitted_whole_without_evaluation():
    logits, labels = _logits(24)
    payload = initial_calibrator(logits, labels, method="temperature")
    assert payload["evaluation"] is None and payload["method"] == "temperature"
