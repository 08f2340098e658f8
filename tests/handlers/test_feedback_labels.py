"""One feedback item's validation, by hand-picked cases (Unicode digits included)."""

from __future__ import annotations

import pytest

from service.handlers.feedback_labels import label_index, valid_prediction_id


@pytest.mark.parametrize("label", ["²", "١", "٣", "¹0", " 1", "1.0", "-1", "10", "99999999999999999999"])
def test_strings_that_are_not_ascii_indices_are_invalid(label: str) -> None:
    index, error = label_index(label, 10, [])
    assert index == -1 and error is not None and "is not one of the model's classes" in error


@pytest.mark.parametrize(("label", "classes", "expected"), [
    (3, [], 3), ("3", [], 3), ("cat", ["dog", "cat"], 1), (0, ["dog", "cat"], 0)])
def test_indices_and_names(label: object, classes: list[str], expected: int) -> None:
    assert label_index(label, 10 if not classes else 2, classes) == (expected, None)


@pytest.mark.parametrize("label", [True, None, 2.0, [1], {"a": 1}, 10, -1])
def test_other_labels_are_invalid(label: object) -> None:
    assert label_index(label, 10, [])[0] == -1


@pytest.mark.parametrize(("value", "ok"), [
    ("0192f3a4-5b6c-7d8e-9f00-112233445566", True), ("{0192f3a4-5b6c-7d8e-9f00-112233445566}", False),
    ("0192f3a45b6c7d8e9f00112233445566", False), ("٠192f3a4-5b6c-7d8e-9f00-112233445566", False),
    (12, False), (None, False), ("x" * 10_000, False)])
def test_prediction_ids_are_canonical_uuids(value: object, ok: bool) -> None:
    assert valid_prediction_id(value) is ok
