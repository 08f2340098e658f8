"""onnxruntime wrapper: one session per model version, returning (n, K) scores in log space.

Models that output logits are returned as is; models that output probabilities (e.g. scikit-learn
converts, including ``ZipMap`` outputs: a list of {class: prob} dicts) are returned as log-probabilities,
which is how calibrators consume them (DESIGN.md §6). Which of the two an output holds is what the card
declares (``output.kind``); a card without it gets the kind inferred from the graph.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.calibration import logits_from_probabilities
from service.repository.card import ModelCard
from service.repository.outputs import is_zipmap, pick_output
from service.repository.policy import BatchingConfig

_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}
# Ops whose output is a probability vector (skl2onnx ends classifiers in ZipMap, Normalizer or Softmax).
PROBABILITY_OPS = frozenset({"Softmax", "ZipMap", "Normalizer"})


class OnnxClassifier:
    """A loaded ONNX classifier; ``scores(x)`` maps (n, n_features) float rows to (n, K) log-space scores."""

    batching = False  # ``Batched`` says True: the predictor then scores in a worker thread

    def __init__(self, path: Path, card: ModelCard, *, intra_op_threads: int = 1, inter_op_threads: int = 1):
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = inter_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # One request runs one small graph: spinning worker threads only burn the cores uvicorn needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.card = card
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"expected one ONNX input, found {len(inputs)}")
        self.input_name = inputs[0].name
        self.input_dtype = _ORT_DTYPES.get(inputs[0].type, np.float32)
        # per-row shape the graph wants (batch axis dropped); flat rows are reshaped to it
        self.row_shape = tuple(int(d) if isinstance(d, int) and d > 0 else -1 for d in inputs[0].shape[1:])
        outputs = {o.name: o for o in self.session.get_outputs()}
        self.output_name = pick_output({n: str(o.type) for n, o in outputs.items()}, card.output.name)
        declared = getattr(card.output, "kind", None)
        self.output_kind: str = declared or infer_output_kind(path, self.output_name)
        self._outputs, self._reshape = [self.output_name], len(self.row_shape) > 1
        # the binding's run, without the Python wrapper's per-call checks (~3 µs of a ~7 µs run at batch 1);
        # the wrapper stays the fallback should a release rename it
        native = getattr(self.session, "_sess", None)
        self._run: Any = native.run if native is not None and hasattr(native, "run") else None
        self.n_classes = len(card.classes)
        self.n_features = card.n_features
        self.zipmap = is_zipmap(str(outputs[self.output_name].type))
        if self.zipmap and self.output_kind != "probabilities":
            raise ValueError(f"output '{self.output_name}' is a ZipMap (class → probability maps), "
                             "but the card declares logits")
        # A smoke inference at load time: a graph that does not give (n, K) scores is a load error,
        # reported in readiness, instead of a 500 on the first request.
        self.scores(np.zeros((2, self.n_features)))

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """(n, n_features) → (n, K) float64 logits (or log-probabilities for probability models)."""
        x = rows.astype(self.input_dtype, copy=False)
        if self._reshape:
            x = x.reshape((x.shape[0], *self.row_shape))
        feeds = {self.input_name: x}
        (out,) = self._run(self._outputs, feeds, None) if self._run is not None else self.session.run(
            self._outputs, feeds)
        values = _as_matrix(out, self.n_classes)
        if values.shape[0] != rows.shape[0]:
            raise ValueError(f"the model returned {values.shape[0]} rows of {self.n_classes} classes "
                             f"for {rows.shape[0]} inputs")
        if self.output_kind == "probabilities":
            return logits_from_probabilities(values)
        return values


def infer_output_kind(path: Path, output_name: str) -> str:
    """``probabilities`` if the output is a ZipMap or made by a normalising op, else ``logits``.

    Only reached for cards without ``output.kind``, so the ``onnx`` import stays off the usual start-up."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    for out in graph.output:
        if out.name == output_name and out.type.HasField("sequence_type"):
            return "probabilities"
    producers = {o: node for node in graph.node for o in node.output}
    node = producers.get(output_name)
    while node is not None and node.op_type in ("Identity", "Cast", "Reshape"):  # look through plumbing
        node = producers.get(node.input[0]) if node.input else None
    if node is not None and node.op_type in PROBABILITY_OPS:
        return "probabilities"
    return "logits"


def _as_matrix(out: Any, n_classes: int) -> np.ndarray:
    if isinstance(out, list):  # ZipMap: [{class: prob, ...}, ...] in class order
        return np.array([list(row.values()) for row in out], dtype=np.float64).reshape(-1, n_classes)
    arr = np.asarray(out, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != n_classes:
        raise ValueError(f"the model output has shape {list(arr.shape)}; "
                         f"the card declares {n_classes} classes")
    return arr


# ---- adaptive batching (off by default) ---------------------------------------------------------
@dataclass
class _Pending:
    rows: np.ndarray
    wake: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # this caller runs the next batch (set on arrival at an idle model, or handed over)
    result: np.ndarray | None = None
    error: BaseException | None = None


class Batched:
    """Wraps an ``OnnxClassifier`` with the same ``scores`` contract, merging concurrent calls into one
    onnxruntime run (``config.json`` ``dynamic_batching``, Triton's names; off by default).

    No timer is needed for batches to form: while one merged run executes, arriving callers queue, and
    the next leader takes everything queued (up to ``max_batch_size`` rows) ("continuous batching"). A
    caller at an idle model runs at once, so batching adds no latency at low load;
    ``max_queue_delay_microseconds`` > 0 makes a leader wait for company first — worth it only when one
    run costs far more than the wait. Callers must be on different threads (the V2 route runs batched
    versions in the thread pool); onnxruntime releases the GIL while it computes. The queue is FIFO and
    the leader is always at its head, so every caller waits for at most the batch in flight plus its own.
    """

    batching = True

    def __init__(self, inner: Any, config: BatchingConfig) -> None:
        self.inner = inner
        self.config = config
        self._queue: deque[_Pending] = deque()
        self._lock = threading.Lock()
        self._running = False  # a leader is taking or running a batch
        self.batches = 0  # onnxruntime calls made (for tests and tuning)

    def __getattr__(self, name: str) -> Any:  # n_features, output_kind, session, … of the wrapped scorer
        return getattr(self.inner, name)

    def scores(self, rows: np.ndarray) -> np.ndarray:
        mine = _Pending(rows)
        with self._lock:
            self._queue.append(mine)
            if not self._running:
                self._running = mine.lead = True
        if not mine.lead:
            mine.wake.wait()  # until our batch ran, or the leader handed the role to us
        if mine.lead:
            delay = self.config.max_queue_delay_microseconds
            if delay:
                time.sleep(delay / 1e6)
            with self._lock:
                batch = self._take()
            self._run(batch)
            with self._lock:  # hand over to the oldest waiter, or go idle
                if self._queue:
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.wake.set()
                else:
                    self._running = False
        if mine.error is not None:
            raise mine.error
        assert mine.result is not None
        return mine.result

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        n = 0
        while self._queue and (not batch or n + len(self._queue[0].rows) <= self.config.max_batch_size):
            item = self._queue.popleft()
            batch.append(item)
            n += len(item.rows)
        return batch

    def _run(self, batch: list[_Pending]) -> None:
        self.batches += 1
        try:
            merged = np.concatenate([p.rows for p in batch]) if len(batch) > 1 else batch[0].rows
            out = self.inner.scores(merged)
            start = 0
            for p in batch:
                p.result = out[start:start + len(p.rows)]
                start += len(p.rows)
        except BaseException as exc:  # every caller in the batch sees the failure, none hangs
            for p in batch:
                p.error = exc
        for p in batch:
            if not p.lead:
                p.wake.set()
