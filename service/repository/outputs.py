"""Which ONNX output holds a classifier's scores: one rule for the runtime and ``calibserve register``.

The card's output when the graph has it; else, among the float-tensor and ZipMap outputs, a ZipMap first
(skl2onnx classifiers end in ``output_label`` + a ZipMap ``output_probability``), then a name containing
"prob", then one containing "logit", then graph order.
"""

from __future__ import annotations

from collections.abc import Mapping

SCORE_TYPES = frozenset({"tensor(float)", "tensor(double)"})


def is_zipmap(onnx_type: str) -> bool:
    return onnx_type.startswith("seq(map(")


def pick_output(outputs: Mapping[str, str], wanted: str | None = None) -> str:
    """``outputs`` maps output name → onnxruntime type string (``NodeArg.type``), in graph order.

    Raises ``LookupError`` when ``wanted`` is missing or no output can hold scores."""
    if wanted is not None and wanted in outputs:
        return wanted
    usable = [name for name, kind in outputs.items() if is_zipmap(kind) or kind in SCORE_TYPES]
    if not usable:
        raise LookupError(f"no float score output among {dict(outputs)}")

    def preference(name: str) -> int:
        if is_zipmap(outputs[name]):
            return 0
        if "prob" in name.lower():
            return 1
        return 2 if "logit" in name.lower() else 3

    return min(usable, key=preference)  # min is stable: graph order breaks ties
