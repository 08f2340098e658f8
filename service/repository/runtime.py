"""onnxruntime wrapper: one session per model version, returning (n, K) scores in log space.

Models that output logits are returned as is; models that output probabilities (e.g. scikit-learn
converts, including ``ZipMap`` outputs: a list of {class: prob} dicts) are returned as log-probabilities,
which is how calibrators consume them (DESIGN.md §6).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.calibration import logits_from_probabilities
from service.repository.card import ModelCard

_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class OnnxClassifier:
    """A loaded ONNX classifier; ``scores(x)`` maps (n, n_features) float rows to (n, K) log-space scores."""

    def __init__(self, path: Path, card: ModelCard, *, intra_op_threads: int = 1, inter_op_threads: int = 1):
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.card = card
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"expected one ONNX input, found {len(inputs)}")
        self.input_name = inputs[0].name
        self.input_dtype = _ORT_DTYPES.get(inputs[0].type, np.float32)
        # per-row shape the graph wants (batch axis dropped); flat rows are reshaped to it
        self.row_shape = tuple(int(d) if isinstance(d, int) and d > 0 else -1 for d in inputs[0].shape[1:])
        names = [o.name for o in self.session.get_outputs()]
        self.output_name = card.output.name if card.output.name in names else names[-1]
        self.output_kind = card.output.kind
        self.n_classes = len(card.classes)
        self.n_features = card.n_features

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """(n, n_features) → (n, K) float64 logits (or log-probabilities for probability models)."""
        x = rows.astype(self.input_dtype, copy=False)
        if len(self.row_shape) > 1:
            x = x.reshape((x.shape[0], *self.row_shape))
        (out,) = self.session.run([self.output_name], {self.input_name: x})
        values = _as_matrix(out, self.n_classes)
        if self.output_kind == "probabilities":
            return logits_from_probabilities(values)
        return values


def _as_matrix(out: Any, n_classes: int) -> np.ndarray:
    if isinstance(out, list):  # ZipMap: [{class: prob, ...}, ...] in class order
        return np.array([list(row.values()) for row in out], dtype=np.float64).reshape(-1, n_classes)
    return np.asarray(out, dtype=np.float64).reshape(-1, n_classes)
