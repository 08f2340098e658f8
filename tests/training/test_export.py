import numpy as np
import onnx
import pytest
import torch

from service.training.export import (
    ExportError,
    check_self_contained,
    export_onnx,
    onnx_logits,
    onnx_session,
    verify_onnx,
)
from service.training.models import build_classifier
from service.training.seeding import deterministic


def _model(arch: str = "mlp", n_classes: int = 10, binary_head: bool = False, n_features: int = 64):
    X = np.random.default_rng(0).uniform(0, 16, size=(50, n_features)).astype(np.float32)
    with deterministic(0):
        return build_classifier(X, n_classes, arch=arch, hidden=(32,), binary_head=binary_head).eval()


@pytest.mark.parametrize(
    ("arch", "n_classes", "binary_head"),
    [("mlp", 10, False), ("cnn", 10, False), ("cnn1d", 10, False), ("cnn1d", 2, True), ("mlp", 2, True)],
)
def test_onnxruntime_matches_torch_and_file_is_self_contained(tmp_path, arch, n_classes, binary_head):
    model = _model(arch, n_classes, binary_head)
    path = tmp_path / "model.onnx"
    export_onnx(model, path, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]

    session = onnx_session(path)
    (inp,) = session.get_inputs()
    assert inp.name == "input" and inp.type == "tensor(float)" and inp.shape[1] == 64
    assert not isinstance(inp.shape[0], int)  # dynamic batch axis
    assert [o.name for o in session.get_outputs()] == ["logits"]

    rng = np.random.default_rng(1)
    for n in (1, 5, 333):
        x = rng.uniform(-5, 20, size=(n, 64)).astype(np.float32)
        with torch.no_grad():
            expected = model(torch.as_tensor(x)).numpy()
        got = onnx_logits(session, x)
        assert got.shape == (n, n_classes)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    if binary_head:
        assert np.all(got[:, 0] == 0)


def test_no_initializer_uses_external_data(tmp_path):
    path = tmp_path / "model.onnx"
    export_onnx(_model(), path, 64)
    proto = onnx.load(str(path), load_external_data=False)
    assert proto.graph.initializer and all(t.data_location == onnx.TensorProto.DEFAULT for t in proto.graph.initializer)


def test_side_file_is_detected(tmp_path):
    path = tmp_path / "model.onnx"
    export_onnx(_model(), path, 64)
    (tmp_path / "model.onnx.data").write_bytes(b"\0")
    with pytest.raises(ExportError, match="side files"):
        check_self_contained(path)


def test_verification_catches_a_different_model(tmp_path):
    path = tmp_path / "model.onnx"
    model = _model()
    export_onnx(model, path, 64)
    with torch.no_grad():
        model.body[-1].bias += 1e-3
    with pytest.raises(ExportError, match="differs from torch"):
        verify_onnx(model, path, 64)
