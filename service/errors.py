"""Domain errors: the single source of HTTP statuses. Raised below ``api/``, rendered by one handler.

Each class names what happened, not the status it maps to (``NoPreviousCalibrator``, not ``Conflict``).
"""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 500
    retry_after: int | None = None  # seconds: sent as ``Retry-After`` (a 503 the client should retry)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers (``Retry-After`` for the retryable ones)."""
        return {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}


class Retryable(ServiceError):
    """A condition the client should retry after ``retry_after`` seconds (sent as ``Retry-After``)."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidInput(ServiceError):
    status_code = 400


class UnknownCalibrationMethod(InvalidInput):
    """A re-fit named a method the calibration table does not have."""


class ModelNotFound(ServiceError):
    status_code = 404


class ModelNotReady(ServiceError):
    status_code = 503


class PredictionLogFull(ServiceError):
    """The durable prediction log is at its disk bound: nothing is served that could not be kept."""

    status_code = 503
    retry_after = 1


class CalibratorNotFound(ServiceError):
    status_code = 404


class PayloadTooLarge(ServiceError):
    status_code = 413


class RequestTimeout(ServiceError):
    """The request body did not arrive within the body timeout (a slow or stalled client)."""

    status_code = 408


class TooManyRequests(Retryable):
    """This client already has the configured number of requests in flight."""

    status_code = 429


class DatabaseUnavailable(Retryable):
    """The database cannot be reached (connection refused, lost or invalidated): retry later."""

    status_code = 503


class AdminTokenMissing(ServiceError):
    """An admin route was called without ``Authorization: Bearer …``."""

    status_code = 401


class AdminTokenRejected(ServiceError):
    """The bearer token matches no configured token, or admin routes are disabled (no token configured)."""

    status_code = 403


class NoPreviousCalibrator(ServiceError):
    """A rollback was asked for, but the active calibrator replaced nothing."""

    status_code = 409


class ClientDisconnected(ServiceError):
    """The client closed the connection before its request arrived (nginx's 499); nothing is answered."""

    status_code = 499


class NotEnoughData(ServiceError):
    """A re-fit was asked for with too few labels, or with classes missing from them."""

    status_code = 422


class NoConformalCalibrator(ServiceError):
    """A prediction set was asked of a model version whose active calibrator has no conformal calibrator."""

    status_code = 409


class NoCostMatrix(ServiceError):
    """A Bayes decision was asked of a model with no active cost matrix."""

    status_code = 409


class CostMatrixNotFound(ServiceError):
    """An admin asked to activate a cost-matrix version that does not exist."""

    status_code = 404


class ShadowLimitReached(ServiceError):
    """A calibrator was put in shadow, but the version already has the configured number of shadows."""

    status_code = 409


class ShadowOfActive(ServiceError):
    """The active calibrator was asked to go in shadow (it is already scored on every label)."""

    status_code = 409


class NotInShadow(ServiceError):
    """A calibrator that is not in shadow was asked to leave it, or to be compared."""

    status_code = 404
