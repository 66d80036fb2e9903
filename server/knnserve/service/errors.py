"""Service-level exceptions and THE one mapping from any exception to a gRPC status code."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from knnserve.errors import InvalidInputError

GENERIC_INTERNAL_MESSAGE = "internal error; the server log has the details (request id in the trailing metadata)"


class ServiceError(Exception):
    """Base class of the errors the service raises on purpose."""


class ModelNotFoundError(ServiceError, LookupError):
    """No model of that name, or no such version of it."""


class ModelsNotLoadedError(ServiceError):
    """The server has not finished loading its models (or is shutting down)."""


class RequestTooLargeError(ServiceError):
    """A request carries more rows (or bytes) than the server's limits allow."""


class DeadlineExpiredError(ServiceError, TimeoutError):
    """The call's deadline passed before it could be answered."""


class UnauthenticatedError(ServiceError):
    """Missing or wrong bearer token."""


@dataclass(frozen=True)
class MappedStatus:
    """A status code, the message the caller sees, and whether the server log needs the traceback."""

    code: grpc.StatusCode
    message: str
    log_traceback: bool = False


def status_for(error: BaseException) -> MappedStatus:
    """Map an exception to the status a caller receives; anything unexpected becomes INTERNAL."""
    if isinstance(error, InvalidInputError):
        return MappedStatus(grpc.StatusCode.INVALID_ARGUMENT, str(error))
    if isinstance(error, ModelNotFoundError):
        return MappedStatus(grpc.StatusCode.NOT_FOUND, str(error))
    if isinstance(error, ModelsNotLoadedError):
        return MappedStatus(grpc.StatusCode.UNAVAILABLE, str(error))
    if isinstance(error, UnauthenticatedError):
        return MappedStatus(grpc.StatusCode.UNAUTHENTICATED, str(error))
    if isinstance(error, RequestTooLargeError):
        return MappedStatus(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
    if isinstance(error, DeadlineExpiredError):
        return MappedStatus(grpc.StatusCode.DEADLINE_EXCEEDED, str(error))
    return MappedStatus(grpc.StatusCode.INTERNAL, GENERIC_INTERNAL_MESSAGE, log_traceback=True)


__all__ = [
    "GENERIC_INTERNAL_MESSAGE",
    "DeadlineExpiredError",
    "MappedStatus",
    "ModelNotFoundError",
    "ModelsNotLoadedError",
    "RequestTooLargeError",
    "ServiceError",
    "UnauthenticatedError",
    "status_for",
]
