"""One output-picking rule for the runtime and for ``calibserve register`` (before: two rules that disagreed)."""

from __future__ import annotations

import pytest

from service.repository.outputs import pick_output

F = "tensor(float)"


@pytest.mark.parametrize(("outputs", "wanted", "expected"), [
    ({"label": "tensor(int64)", "probabilities": "seq(map(int64,tensor(float)))"}, None, "probabilities"),
    ({"logits": F, "probs": F}, None, "probs"),  # the old runtime rule took the last float output: also probs
    ({"probs": F, "logits": F}, None, "probs"),  # …but here it took "logits"
    ({"a": F, "logit_out": F, "b": F}, None, "logit_out"),
    ({"a": F, "b": "tensor(double)"}, None, "a"),
    ({"a": F, "b": F}, "b", "b"),
    ({"a": F}, "missing", "a"),
])
def test_preference(outputs: dict[str, str], wanted: str | None, expected: str) -> None:
    assert pick_output(outputs, wanted) == expected


def test_no_score_output() -> None:
    with pytest.raises(LookupError, match="no float score output"):
        pick_output({"label": "tensor(int64)"})
