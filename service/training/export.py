"""ONNX export: one self-contained ``model.onnx`` (input ``input``, output ``logits``, dynamic batch axis).

We use torch's default (``torch.export``-based, onnxscript) exporter with ``external_data=False`` so
every weight sits inside the file, then check that no tensor references external data and that
onnxruntime reproduces torch's logits to 1e-5 on random raw-feature rows of several batch sizes.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx.external_data_helper import uses_external_data
from torch import nn

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
VERIFY_ATOL = 1e-5


class ExportError(RuntimeError):
    """The exported graph is not self-contained or does not reproduce the torch model."""


def onnx_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def onnx_logits(session: ort.InferenceSession, X: np.ndarray) -> np.ndarray:
    """Logits ``(N, K)`` float64 for raw feature rows ``X`` (N, d)."""
    out = session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(X, dtype=np.float32)})[0]
    return np.asarray(out, dtype=np.float64)


def export_onnx(model: nn.Module, path: Path, n_features: int, *, seed: int = 0) -> None:
    """Write ``model`` (eval mode, float32, raw rows ``(N, n_features)``) to ``path`` and verify it."""
    model = model.eval().float()
    example = torch.zeros(2, n_features)
    batch = torch.export.Dim("batch")
    registration_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    previous_level = registration_log.level
    registration_log.setLevel(logging.ERROR)  # "torchvision is not installed" notices
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    finally:
        registration_log.setLevel(previous_level)
    check_self_contained(path)
    verify_onnx(model, path, n_features, seed=seed)


def check_self_contained(path: Path) -> None:
    """Raise ``ExportError`` if the graph stores any tensor outside ``path`` or left a side file."""
    proto = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in proto.graph.initializer if uses_external_data(t)]
    if external:
        raise ExportError(f"{path.name} references external data for {external[:3]}")
    side_files = sorted(p.name for p in path.parent.glob(f"{path.name}*") if p != path)
    if side_files:
        raise ExportError(f"the exporter wrote side files next to {path.name}: {side_files}")
    onnx.checker.check_model(proto)


def verify_onnx(model: nn.Module, path: Path, n_features: int, *, seed: int = 0) -> float:
    """onnxruntime vs torch on random raw rows (batch sizes 1, 7, 64); returns the max abs difference."""
    session = onnx_session(path)
    gen = torch.Generator().manual_seed(seed)
    mean = getattr(model, "mean", torch.zeros(n_features))
    std = getattr(model, "std", torch.ones(n_features))
    worst = 0.0
    for n in (1, 7, 64):
        x = mean + std * torch.randn(n, n_features, generator=gen)
        with torch.no_grad():
            expected = model(x).double().numpy()
        got = onnx_logits(session, x.numpy())
        if got.shape != expected.shape:
            raise ExportError(f"onnxruntime output shape {got.shape} != torch {expected.shape}")
        diff = float(np.max(np.abs(got - expected)))
        if not np.allclose(got, expected, rtol=VERIFY_ATOL, atol=VERIFY_ATOL):
            raise ExportError(f"onnxruntime differs from torch by {diff:.3g} (> {VERIFY_ATOL}) at batch {n}")
        worst = max(worst, diff)
    return worst
