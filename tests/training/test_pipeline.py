import json
import time

import numpy as np
import pytest

from service.calibration import CALIBRATORS, calibrator_from_dict
from service.repository.card import ModelCard, read_card, sha256_of
from service.repository.runtime import OnnxClassifier
from service.training import pipeline
from service.training.data import load_bundled, split_dataset
from service.training.pipeline import train_and_export

FILES = ["calibrator.json", "card.json", "conformal.json", "model.onnx"]


def test_demo_configuration_under_a_minute(tmp_path):
    """The demo's call: digits, FLSD-53, MLP, 60 epochs, curvature on."""
    started = time.perf_counter()
    directory = train_and_export(repository=tmp_path, calibrator="temperature", progress=False)
    elapsed = time.perf_counter() - started
    assert elapsed < 60, elapsed
    assert directory == tmp_path / "digits" / "1"
    assert sorted(p.name for p in directory.iterdir()) == FILES
    assert [p.name for p in (tmp_path / "digits").iterdir()] == ["1"]  # no staging leftovers

    card = ModelCard.model_validate_json((directory / "card.json").read_text())
    assert card.onnx_sha256 == sha256_of(directory / "model.onnx")
    assert (card.name, card.version, card.classes) == ("digits", 1, [str(d) for d in range(10)])
    assert (card.input.name, card.input.shape, card.input.dtype) == ("input", [64], "float32")
    assert (card.output.name, card.output.kind) == ("logits", "logits")
    assert (card.loss.name, card.loss.gamma) == ("flsd53", 3.0)
    assert card.data is not None and (card.data.n_train, card.data.n_val, card.data.n_test) == (1077, 360, 360)
    assert card.test_metrics.accuracy > 0.9
    assert 0 <= card.test_metrics.ece < 0.3 and card.test_metrics.nll > 0
    assert card.curvature is not None and card.curvature["hessian_top_eig_ce"] > 0
    assert card.curvature["hessian_trace_ce_stderr"] >= 0

    payload = json.loads((directory / "calibrator.json").read_text())
    assert payload["method"] == "temperature" and set(payload["evaluation"]) >= {"before", "after"}
    conformal = json.loads((directory / "conformal.json").read_text())
    # fitted on the 30% of the 360 validation rows that the calibrator held out (108), evaluated on half
    assert conformal["method"] == "split_conformal" and conformal["params"]["score"] == "lac"
    assert sum(len(g) for g in conformal["params"]["scores"]) == payload["evaluation"]["n_eval"] == 108
    assert conformal["evaluation"]["n_fit"] + conformal["evaluation"]["n_eval"] == 108
    calibrator = calibrator_from_dict(payload)

    # what the registry does with it: onnxruntime scores raw rows, the calibrator maps them
    split = split_dataset(load_bundled("digits"), seed=0)
    served = OnnxClassifier(directory / "model.onnx", card)
    probs = calibrator.predict_proba(served.scores(split.X_test))
    assert probs.shape == (360, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert (probs.argmax(1) == split.y_test).mean() == pytest.approx(card.test_metrics.accuracy)


def test_existing_version_needs_overwrite(tmp_path):
    kwargs = {
        "dataset": "iris",
        "loss": "cross_entropy",
        "name": "iris",
        "epochs": 2,
        "repository": tmp_path,
        "calibrator": "temperature",
        "curvature": False,
        "progress": False,
    }
    first = train_and_export(**kwargs)
    created = read_card(first).created_at
    with pytest.raises(FileExistsError, match="overwrite"):
        train_and_export(**kwargs)
    second = train_and_export(**kwargs, overwrite=True)
    assert second == first and read_card(second).created_at > created
    assert [p.name for p in (tmp_path / "iris").iterdir()] == ["1"]
    assert read_card(second).curvature is None
    # iris has 30 validation rows: too few to hold 30% out, so the calibrator is fitted on all of them
    payload = json.loads((second / "calibrator.json").read_text())
    assert payload["method"] == "temperature" and payload["evaluation"] is None


def test_default_calibrator_is_the_cores_auto_choice(tmp_path):
    directory = train_and_export(
        dataset="wine",
        loss="focal",
        gamma=1.0,
        name="w",
        epochs=5,
        repository=tmp_path,
        curvature=False,
        progress=False,
    )
    payload = json.loads((directory / "calibrator.json").read_text())
    assert payload["method"] in CALIBRATORS and "evaluation" in payload
    calibrator_from_dict(payload)


def test_failure_leaves_no_version_directory(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "curvature_report", broken)
    with pytest.raises(RuntimeError, match="boom"):
        train_and_export(
            dataset="iris",
            loss="focal",
            gamma=1.0,
            name="iris",
            epochs=1,
            repository=tmp_path,
            calibrator="temperature",
            progress=False,
        )
    assert list((tmp_path / "iris").iterdir()) == []


def test_anyloss_binary_model_and_cnn(tmp_path):
    binary = train_and_export(
        dataset="breast_cancer",
        loss="anyloss_f1",
        name="bc",
        epochs=5,
        repository=tmp_path,
        calibrator="temperature",
        progress=False,
    )
    card = read_card(binary)
    assert card.classes == ["malignant", "benign"] and card.loss.gamma is None
    assert card.loss.params["metric"] == "fbeta" and "[0, z]" in card.description
    assert card.curvature is not None

    cnn = train_and_export(
        dataset="digits",
        loss="focal",
        gamma=2.0,
        name="dcnn",
        arch="cnn",
        hidden=(16,),
        epochs=1,
        repository=tmp_path,
        calibrator="temperature",
        curvature=False,
        progress=False,
    )
    assert read_card(cnn).input.shape == [64]
