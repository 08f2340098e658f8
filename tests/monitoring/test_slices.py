"""Which slice a tag value names, and the slice-key setting (CALIBSERVE_SLICE_KEYS)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from service.monitoring.slices import OTHER, slice_value
from service.settings import Settings


@pytest.mark.parametrize(("value", "named"), [
    ("fr", "fr"), (True, "true"), (False, "false"), (3, "3"), (-7, "-7"), (0.5, "0.5"), (1.0, "1.0"),
    ("", OTHER), ("x" * 129, OTHER), ("x" * 128, "x" * 128), ("other", OTHER),
    (None, None), ({"a": 1}, None), ([1, 2], None),
])
def test_tag_values_name_slices(value: Any, named: str | None) -> None:
    assert slice_value(value) == named


def test_slice_keys_come_from_the_environment_and_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALIBSERVE_SLICE_KEYS", '["country", "device.type"]')
    monkeypatch.setenv("CALIBSERVE_SLICE_MAX_VALUES", "7")
    s = Settings()
    assert (s.slice_keys, s.slice_max_values) == (["country", "device.type"], 7)
    assert Settings(_env_file=None).slice_keys == ["country", "device.type"]
    monkeypatch.delenv("CALIBSERVE_SLICE_KEYS")
    assert Settings().slice_keys == []
    for bad in (["a b"], ["x" * 65], ["a", "a"], [""]):
        with pytest.raises(ValidationError):
            Settings(slice_keys=bad)
    with pytest.raises(ValidationError):
        Settings(slice_max_values=0)
