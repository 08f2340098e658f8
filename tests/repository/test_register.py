import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from service.repository.card import ModelCard, sha256_of
from service.repository.register import (
    RegistrationError,
    add_register_arguments,
    register_directory,
    run_register,
)
from service.repository.runtime import OnnxClassifier

W = np.array([[1.0, -1.0, 0.5], [0.2, 0.3, -0.4], [0.0, 1.0, 1.0], [-0.5, 0.1, 0.2]], dtype=np.float32)
B = np.array([0.1, -0.2, 0.3], dtype=np.float32)


def linear_graph(path: Path, *, softmax: bool, output: str = "scores", batch: int | str = "N") -> Path:
    """x (batch, 4) → x·W + b (→ Softmax), built with onnx.helper: no torch involved."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["z"])]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["z"], [output], axis=1))
    else:
        nodes.append(helper.make_node("Identity", ["z"], [output]))
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, 3])],
        initializer=[numpy_helper.from_array(W, "W"), numpy_helper.from_array(B, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def test_softmax_graph_is_registered_as_probabilities(tmp_path):
    directory = tmp_path / "lin" / "1"
    linear_graph(directory / "model.onnx", softmax=True)
    card = register_directory(directory, name="lin", version=1, classes=["a", "b", "c"])
    assert card.output.kind == "probabilities" and card.output.name == "scores"
    assert (card.input.name, card.input.shape, card.input.dtype) == ("x", [4], "float32")
    on_disk = ModelCard.model_validate_json((directory / "card.json").read_text())
    assert on_disk == card and on_disk.onnx_sha256 == sha256_of(directory / "model.onnx")
    assert on_disk.loss.name == "unknown"

    # the serving runtime calibrates probability models through their logs
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    z = x @ W + B
    expected = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(OnnxClassifier(directory / "model.onnx", card).scores(x), expected, atol=1e-5)


def test_logit_graph_is_registered_as_logits(tmp_path):
    linear_graph(tmp_path / "model.onnx", softmax=False)
    card = register_directory(tmp_path, name="lin", version=2)
    assert card.output.kind == "logits" and card.classes == ["0", "1", "2"]


def test_explicit_kind_and_single_onnx_file_is_renamed(tmp_path):
    linear_graph(tmp_path / "exported.onnx", softmax=False)
    card = register_directory(tmp_path, name="lin", version=1, output_kind="probabilities")
    assert card.output.kind == "probabilities"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.json", "model.onnx"]


def test_scikit_learn_zipmap_model(tmp_path):
    import skl2onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    onx = skl2onnx.to_onnx(clf, X[:1].astype(np.float32))
    (tmp_path / "model.onnx").write_bytes(onx.SerializeToString())
    card = register_directory(tmp_path, name="iris", version=1)
    assert (card.output.name, card.output.kind) == ("output_probability", "probabilities")
    assert card.classes == ["0", "1", "2"] and card.input.shape == [4]
    scores = OnnxClassifier(tmp_path / "model.onnx", card).scores(X[:10].astype(np.float32))
    np.testing.assert_allclose(np.exp(scores), clf.predict_proba(X[:10]), atol=1e-5)


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (lambda d: linear_graph(d / "model.onnx", softmax=True), {"classes": ["a", "b"]}, "2 class names"),
        (lambda d: linear_graph(d / "model.onnx", softmax=True, batch=1), {}, "fixed batch"),
        (lambda d: (d / "model.onnx").write_bytes(b"not onnx"), {}, "cannot load"),
        (lambda d: None, {}, "exactly one .onnx"),
        (lambda d: linear_graph(d / "model.onnx", softmax=True), {"input_name": "input"}, "called 'x'"),
        (lambda d: linear_graph(d / "model.onnx", softmax=True), {"output_name": "nope"}, "no output"),
    ],
)
def test_unservable_directories_are_rejected(tmp_path, make, kwargs, message):
    make(tmp_path)
    with pytest.raises(RegistrationError, match=message):
        register_directory(tmp_path, name="m", version=1, **kwargs)
    assert not (tmp_path / "card.json").exists()


def test_existing_card_needs_overwrite(tmp_path):
    linear_graph(tmp_path / "model.onnx", softmax=True)
    register_directory(tmp_path, name="m", version=1)
    with pytest.raises(RegistrationError, match="overwrite"):
        register_directory(tmp_path, name="m", version=1)
    assert register_directory(tmp_path, name="m", version=1, overwrite=True).version == 1


def test_cli(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_register_arguments(parser)
    directory = tmp_path / "lin" / "4"
    linear_graph(directory / "model.onnx", softmax=True)
    args = parser.parse_args([str(directory), "--name", "lin", "--version", "4", "--classes", "a, b,c"])
    assert run_register(args) == 0
    assert "probabilities" in capsys.readouterr().out
    assert run_register(args) == 2  # card exists
    assert "overwrite" in capsys.readouterr().err
    bad = parser.parse_args([str(directory), "--name", "lin", "--version", "0", "--overwrite"])
    assert run_register(bad) == 2


def test_register_does_not_import_torch():
    code = "import sys\nimport service.repository.register\nassert 'torch' not in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_copies_a_single_onnx_file_into_the_repository(tmp_path, capsys):
    # the form a user types first: `calibserve register model.onnx --name lin --version 1`
    source = linear_graph(tmp_path / "downloads" / "exported.onnx", softmax=False, output="logits")
    repository = tmp_path / "models"
    parser = argparse.ArgumentParser()
    add_register_arguments(parser)
    args = parser.parse_args([str(source), "--name", "lin", "--version", "1", "--repository", str(repository)])
    assert run_register(args) == 0
    directory = repository / "lin" / "1"
    assert sorted(p.name for p in directory.iterdir()) == ["card.json", "model.onnx"]
    assert (directory / "model.onnx").read_bytes() == source.read_bytes() and source.exists()
    card = ModelCard.model_validate_json((directory / "card.json").read_text())
    assert (card.name, card.version, card.output.kind) == ("lin", 1, "logits")
    assert card.onnx_sha256 == sha256_of(source)
    assert str(directory / "card.json") in capsys.readouterr().out

    # the registry serves it as <repository>/<name>/<version>/
    served = OnnxClassifier(directory / "model.onnx", card)
    x = np.ones((2, 4), dtype=np.float32)
    np.testing.assert_allclose(served.scores(x), x @ W + B, atol=1e-5)

    assert run_register(args) == 2  # a second copy over an existing model needs --overwrite
    assert "overwrite" in capsys.readouterr().err


def test_cli_repository_defaults_to_the_settings(tmp_path, monkeypatch):
    source = linear_graph(tmp_path / "m.onnx", softmax=True)
    monkeypatch.setenv("CALIBSERVE_MODEL_REPOSITORY", str(tmp_path / "repo"))
    parser = argparse.ArgumentParser()
    add_register_arguments(parser)
    assert run_register(parser.parse_args([str(source), "--name", "m", "--version", "2"])) == 0
    assert (tmp_path / "repo" / "m" / "2" / "card.json").is_file()


def test_cli_rejects_a_missing_path_and_a_non_onnx_file(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_register_arguments(parser)
    assert run_register(parser.parse_args([str(tmp_path / "nope.onnx"), "--name", "m", "--version", "1"])) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("x")
    args = parser.parse_args([str(tmp_path / "notes.txt"), "--name", "m", "--version", "1",
                              "--repository", str(tmp_path / "repo")])
    assert run_register(args) == 2
    assert "neither a directory nor an .onnx file" in capsys.readouterr().err
