"""The table of calibration methods by name, and the two ways to get a calibrator from it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.calibration.auto import AutoCalibrator
from service.calibration.base import CalibrationInputError, Calibrator
from service.calibration.binning import HistogramBinning, IsotonicCalibrator
from service.calibration.dirichlet import DirichletCalibrator
from service.calibration.focal import FocalTemperatureScaling
from service.calibration.identity import IdentityCalibrator
from service.calibration.platt import PlattScaling
from service.calibration.temperature import TemperatureScaling
from service.calibration.vector import VectorScaling

CONCRETE: dict[str, type[Calibrator]] = {
    cls.method: cls
    for cls in (
        IdentityCalibrator,
        TemperatureScaling,
        FocalTemperatureScaling,
        VectorScaling,
        DirichletCalibrator,
        HistogramBinning,
        IsotonicCalibrator,
        PlattScaling,
    )
}
# ``auto`` chooses among the concrete methods: it gets that table, it does not import this module.
CALIBRATORS: dict[str, type[Calibrator]] = {**CONCRETE, AutoCalibrator.method: AutoCalibrator.bound_to(CONCRETE)}


def _lookup(name: object) -> type[Calibrator]:
    try:
        return CALIBRATORS[name]  # type: ignore[index]
    except (KeyError, TypeError):
        raise CalibrationInputError(
            f"unknown calibration method {name!r}; choose one of {', '.join(sorted(CALIBRATORS))}"
        ) from None


def make_calibrator(name: str, **params: Any) -> Calibrator:
    """An unfitted calibrator: ``make_calibrator("temperature")``, hyperparameters as keywords."""
    factory: Callable[..., Calibrator] = _lookup(name)
    try:
        return factory(**params)
    except TypeError as exc:
        raise CalibrationInputError(f"bad parameters for calibration method {name!r}: {exc}") from None


def calibrator_from_dict(data: dict[str, Any]) -> Calibrator:
    """A fitted calibrator from ``to_dict()`` output; dispatches on ``data["method"]`` and ignores
    other top-level keys (e.g. ``"evaluation"``)."""
    if not isinstance(data, dict):
        raise CalibrationInputError(f"a calibrator must be a JSON object; got {type(data).__name__}")
    cls = _lookup(data.get("method"))
    try:
        return cls.from_dict({"method": data["method"], "params": data.get("params", {})})
    except CalibrationInputError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CalibrationInputError(f"malformed {cls.method!r} calibrator parameters: {exc!r}") from None
