"""The identity calibrator: softmax of the logits, unchanged. The baseline ``auto`` must beat."""

from __future__ import annotations

from typing import Any, ClassVar, Self

from numpy.typing import ArrayLike

from service.calibration.base import FloatArray, check_fit_inputs, check_logits, check_method, softmax


class IdentityCalibrator:
    """q = softmax(z). Fitting only validates the inputs."""

    method: ClassVar[str] = "identity"
    preserves_argmax: ClassVar[bool] = True

    def fit(self, logits: ArrayLike, labels: ArrayLike) -> Self:
        check_fit_inputs(logits, labels)
        return self

    def predict_proba(self, logits: ArrayLike) -> FloatArray:
        return softmax(check_logits(logits))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "params": {}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        check_method(data, cls.method)
        return cls()
