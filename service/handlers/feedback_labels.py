"""Validation of one feedback item: a canonical UUID, and a label that is a class index or a class name."""

from __future__ import annotations

import uuid
from typing import Any


def valid_prediction_id(value: Any) -> bool:
    """A prediction id as we hand them out: a 36-character UUID string."""
    if not isinstance(value, str) or len(value) != 36 or not value.isascii():
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def label_index(label: Any, n_classes: int, classes: list[str]) -> tuple[int, str | None]:
    """(class index, None) or (-1, what is wrong). Strings are class names, or ASCII decimal indices
    when the model has no class names ("²" and "١" pass ``str.isdigit`` but are not indices)."""
    if isinstance(label, bool) or label is None:
        return -1, "label must be a class index or a class name"
    if isinstance(label, int):
        if 0 <= label < n_classes:
            return label, None
        return -1, f"label {label} is out of range: the model has {n_classes} classes"
    if isinstance(label, str):
        if label in classes:
            return classes.index(label), None
        if not classes and label.isascii() and label.isdigit() and len(label) <= 9 and int(label) < n_classes:
            return int(label), None
        shown = label if len(label) <= 64 else label[:64] + "…"
        return -1, f"label '{shown}' is not one of the model's classes {classes}"
    return -1, "label must be a class index or a class name"
