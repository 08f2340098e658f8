"""The one model every target serves: scikit-learn ``LogisticRegression`` on ``load_digits``.

MLServer gets the fitted estimator as ``model.joblib``; every other target gets the same estimator
converted by skl2onnx (``zipmap=False``: a plain ``probabilities`` tensor), checked equal to
``predict_proba`` before anything is measured. calibserve adopts the ONNX file through
``service.repository.register`` (what ``calibserve register`` runs) with a **temperature** calibrator
fitted on a held-out split of the log-probabilities, so the calibration step does real work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np

NAME = "digits"
FEATURES = 64


@dataclass(frozen=True)
class BenchModel:
    repository: Path  # calibserve's repository: <repository>/digits/1/{model.onnx, card.json, calibrator.json}
    onnx: Path
    joblib_dir: Path  # MLServer's model folder (model.joblib; model-settings.json is written per server)
    rows: np.ndarray  # float32 (n, 64) request rows
    temperature: float


def build(work: Path, seed: int = 0) -> BenchModel:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from service.calibration import make_calibrator
    from service.repository.card import CALIBRATOR_FILE
    from service.repository.register import register_directory

    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x.astype(np.float32), y, test_size=0.3, random_state=seed,
                                                      stratify=y)
    clf = LogisticRegression(max_iter=2000).fit(x_train, y_train)
    joblib_dir = work / "mlserver-model"
    joblib_dir.mkdir(parents=True)
    joblib.dump(clf, joblib_dir / "model.joblib")
    version_dir = work / "models" / NAME / "1"
    version_dir.mkdir(parents=True)
    onnx_model = to_onnx(clf, initial_types=[("input", FloatTensorType([None, FEATURES]))],
                         options={id(clf): {"zipmap": False}}, target_opset=17)
    onnx_path = version_dir / "model.onnx"
    onnx_path.write_bytes(onnx_model.SerializeToString())
    check_same_model(onnx_path, clf, x_val)
    register_directory(version_dir, name=NAME, version=1, classes=[str(c) for c in clf.classes_],
                       description="bench: sklearn LogisticRegression on load_digits via skl2onnx")
    log_p = np.log(np.clip(clf.predict_proba(x_val), 1e-12, None))
    calibrator = make_calibrator("temperature").fit(log_p, y_val)
    payload = calibrator.to_dict()
    (version_dir / CALIBRATOR_FILE).write_text(json.dumps(payload) + "\n")
    return BenchModel(work / "models", onnx_path, joblib_dir, x_val, float(payload["params"]["temperature"]))


def check_same_model(onnx_path: Path, clf: object, x: np.ndarray) -> None:
    """The ONNX graph must give scikit-learn's probabilities, or the targets would serve different models."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"input": x})
    expected = clf.predict_proba(x)  # type: ignore[attr-defined]
    if not np.allclose(probabilities, expected, atol=1e-5):
        raise RuntimeError(f"skl2onnx output differs from predict_proba by {np.abs(probabilities - expected).max()}")
