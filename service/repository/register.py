"""``calibserve register``: adopt an ONNX classifier produced elsewhere by writing its ``card.json``.

The graph is loaded with onnxruntime; the input name, per-row shape and dtype, the output to serve and
whether it holds logits or probabilities are read from the graph unless given, then a smoke inference on
zeros checks that the output is an (n, K) score matrix with one column per class.  scikit-learn models
converted by skl2onnx expose ``output_label`` plus ``output_probability`` (a ZipMap: a sequence of
{class: probability} maps); the latter is picked and marked ``probabilities``.  No torch here.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
import onnxruntime as ort
from pydantic import ValidationError

from service.repository.card import CARD_FILE, MODEL_FILE, InputSpec, ModelCard, OutputSpec, sha256_of
from service.repository.outputs import pick_output

OutputKind = Literal["logits", "probabilities"]

_INPUT_DTYPES: dict[str, tuple[Literal["float32", "float64"], type[np.floating[Any]]]] = {
    "tensor(float)": ("float32", np.float32),
    "tensor(double)": ("float64", np.float64),
}
# Ops whose output is a probability vector (Normalizer is skl2onnx's L1 normalisation).
_PROBABILITY_OPS = {"Softmax", "ZipMap", "Normalizer"}
_CLASS_LABEL_ATTRIBUTES = ("classlabels_strings", "classlabels_int64s", "classlabels_ints")


class RegistrationError(ValueError):
    """The directory or its ONNX graph cannot be served as a classifier."""


@dataclass(frozen=True)
class GraphSummary:
    input: InputSpec
    output: OutputSpec
    classes: list[str]


def find_model_file(directory: Path) -> Path:
    """``<dir>/model.onnx``; a single other ``*.onnx`` file is renamed to it."""
    if not directory.is_dir():
        raise RegistrationError(f"{directory} is not a directory")
    target = directory / MODEL_FILE
    if target.is_file():
        return target
    candidates = sorted(directory.glob("*.onnx"))
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise RegistrationError(f"{directory} must hold {MODEL_FILE} or exactly one .onnx file (found: {found})")
    candidates[0].rename(target)
    print(f"renamed {candidates[0].name} to {MODEL_FILE}", file=sys.stderr)
    return target


def _input_spec(session: ort.InferenceSession, input_name: str | None) -> tuple[InputSpec, Any]:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise RegistrationError(f"the graph must have exactly one input; it has {[i.name for i in inputs]}")
    node = inputs[0]
    if input_name is not None and input_name != node.name:
        raise RegistrationError(f"the graph's input is called {node.name!r}, not {input_name!r}")
    if node.type not in _INPUT_DTYPES:
        raise RegistrationError(f"input {node.name!r} has type {node.type}; only float32/float64 are served")
    if not node.shape:
        raise RegistrationError(f"input {node.name!r} has no shape; expected (batch, features...)")
    batch, *row = node.shape
    if isinstance(batch, int) and batch > 0:
        raise RegistrationError(f"input {node.name!r} has a fixed batch size {batch}; export a dynamic batch axis")
    if not row or not all(isinstance(d, int) and d > 0 for d in row):
        raise RegistrationError(f"input {node.name!r} has shape {node.shape}; the per-row dimensions must be fixed")
    dtype_name, dtype = _INPUT_DTYPES[node.type]
    return InputSpec(name=node.name, shape=[int(d) for d in row], dtype=dtype_name), dtype


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output}


def _pick_output(session: ort.InferenceSession, output_name: str | None) -> str:
    outputs: dict[str, str] = {str(o.name): str(o.type) for o in session.get_outputs()}
    if output_name is not None and output_name not in outputs:
        raise RegistrationError(f"no output {output_name!r}; the graph has {sorted(outputs)}")
    try:
        return pick_output(outputs, output_name)
    except LookupError as exc:
        raise RegistrationError(f"{exc}; pass --output-name") from None


def _scores_matrix(value: Any) -> np.ndarray:
    if isinstance(value, list):  # ZipMap output: one {class: probability} map per row
        return np.array([list(row.values()) for row in value], dtype=np.float64)
    return np.asarray(value, dtype=np.float64)


def _infer_kind(name: str, graph: onnx.GraphProto, scores: np.ndarray) -> OutputKind:
    producer = _producers(graph).get(name)
    if producer is not None and producer.op_type in _PROBABILITY_OPS:
        return "probabilities"
    lowered = name.lower()
    if "prob" in lowered:
        return "probabilities"
    if "logit" in lowered:
        return "logits"
    looks_like_probabilities = (
        scores.min() >= 0.0 and scores.max() <= 1.0 and np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)
    )
    return "probabilities" if looks_like_probabilities else "logits"


def _graph_classes(graph: onnx.GraphProto) -> list[str] | None:
    """Class labels stored in the graph (ZipMap / scikit-learn classifier attributes), if any."""
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name in _CLASS_LABEL_ATTRIBUTES:
                values = onnx.helper.get_attribute_value(attribute)
                labels = [v.decode() if isinstance(v, bytes) else str(v) for v in values]
                if labels:
                    return labels
    return None


def inspect_graph(
    path: Path,
    *,
    classes: list[str] | None = None,
    input_name: str | None = None,
    output_name: str | None = None,
    output_kind: OutputKind | None = None,
) -> GraphSummary:
    """Load ``path`` with onnxruntime, infer what was not given, and smoke-test it on zeros."""
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
        raise RegistrationError(f"onnxruntime cannot load {path.name}: {exc}") from None
    input_spec, dtype = _input_spec(session, input_name)
    chosen = _pick_output(session, output_name)
    zeros = np.zeros((2, *input_spec.shape), dtype=dtype)
    try:
        (raw,) = session.run([chosen], {input_spec.name: zeros})
    except Exception as exc:
        raise RegistrationError(f"smoke inference on zeros failed: {exc}") from None
    scores = _scores_matrix(raw)
    if scores.ndim != 2 or scores.shape[0] != 2 or scores.shape[1] < 2:
        raise RegistrationError(f"output {chosen!r} has shape {scores.shape}; expected (batch, K ≥ 2)")
    if not np.isfinite(scores).all():
        raise RegistrationError(f"output {chosen!r} is not finite on an all-zero input")
    names = classes or _graph_classes(graph) or [str(k) for k in range(scores.shape[1])]
    if len(names) != scores.shape[1]:
        raise RegistrationError(f"{len(names)} class names given but output {chosen!r} has {scores.shape[1]} columns")
    kind = output_kind or _infer_kind(chosen, graph, scores)
    return GraphSummary(input=input_spec, output=OutputSpec(name=chosen, kind=kind), classes=names)


def register_directory(
    directory: Path,
    *,
    name: str,
    version: int,
    classes: list[str] | None = None,
    output_kind: OutputKind | None = None,
    input_name: str | None = None,
    output_name: str | None = None,
    description: str = "",
    overwrite: bool = False,
) -> ModelCard:
    """Validate ``directory``'s ONNX graph and write its ``card.json`` (atomically); returns the card."""
    card_path = directory / CARD_FILE
    if card_path.exists() and not overwrite:
        raise RegistrationError(f"{card_path} already exists; pass --overwrite to replace it")
    model_path = find_model_file(directory)
    summary = inspect_graph(
        model_path, classes=classes, input_name=input_name, output_name=output_name, output_kind=output_kind
    )
    try:
        card = ModelCard(
            name=name,
            version=version,
            classes=summary.classes,
            input=summary.input,
            output=summary.output,
            onnx_sha256=sha256_of(model_path),
            description=description or f"registered with calibserve register from {model_path.name}",
        )
    except ValidationError as exc:
        raise RegistrationError(f"invalid card: {exc}") from None
    staging = card_path.with_name(f".{CARD_FILE}.tmp")
    staging.write_text(card.model_dump_json(indent=2) + "\n")
    os.replace(staging, card_path)
    return card


def add_register_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``register`` subcommand's options to ``parser``."""
    parser.add_argument("directory", type=Path, help="directory holding model.onnx (or one .onnx file)")
    parser.add_argument("--name", required=True, help="model name")
    parser.add_argument("--version", type=int, required=True, help="model version (>= 1)")
    parser.add_argument("--classes", default=None, help="comma-separated class names, in output column order")
    parser.add_argument(
        "--output-kind",
        choices=("logits", "probabilities"),
        default=None,
        help="what the served output holds (default: inferred from the graph)",
    )
    parser.add_argument("--output-name", default=None, help="graph output to serve (default: inferred)")
    parser.add_argument("--input-name", default=None, help="expected graph input name (checked)")
    parser.add_argument("--description", default="", help="free text for the card")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing card.json")


def run_register(args: argparse.Namespace) -> int:
    """Write the card and print a one-line summary; exit code 2 when the directory cannot be served."""
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    try:
        card = register_directory(
            args.directory,
            name=args.name,
            version=args.version,
            classes=classes,
            output_kind=args.output_kind,
            input_name=args.input_name,
            output_name=args.output_name,
            description=args.description,
            overwrite=args.overwrite,
        )
    except RegistrationError as exc:
        print(f"calibserve register: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.directory / CARD_FILE}: {card.name} v{card.version}, input {card.input.name}"
        f"{card.input.shape} {card.input.dtype}, output {card.output.name} ({card.output.kind}), "
        f"{len(card.classes)} classes"
    )
    if (args.directory.resolve().parent.name, args.directory.name) != (card.name, str(card.version)):
        print(f"note: the registry serves <repository>/{card.name}/{card.version}/", file=sys.stderr)
    return 0
