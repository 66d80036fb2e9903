"""THE mapping between errors and gRPC status codes, both ways: what the server sends for an exception,
and which exception the client raises for a status it receives."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from knnserve_client.wire.errors import (
    DeadlineExpiredError,
    InvalidInputError,
    ModelNotFoundError,
    ModelsNotLoadedError,
    RequestTooLargeError,
    TokenRejectedError,
    WriteRefusedError,
)

GENERIC_INTERNAL_MESSAGE = "internal error; the server log has the details (request id in the trailing metadata)"
REQUEST_ID_KEY = "x-request-id"


class KnnServeClientError(Exception):
    """A call failed; ``code`` is the gRPC status code, ``details`` the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str, *, request_id: str | None = None) -> None:
        self.code = code
        self.details = details
        self.request_id = request_id
        suffix = f" (request id {request_id})" if request_id else ""
        super().__init__(f"{code.name}: {details}{suffix}")


class InvalidArgumentError(KnnServeClientError, ValueError):
    """INVALID_ARGUMENT: the message names the field and the expected value."""


class NotFoundError(KnnServeClientError, LookupError):
    """NOT_FOUND: unknown model name or version."""


class UnavailableError(KnnServeClientError):
    """UNAVAILABLE after the retries: the server is down, loading models or shutting down."""


class UnauthenticatedError(KnnServeClientError):
    """UNAUTHENTICATED: missing or wrong bearer token."""


class PermissionDeniedError(KnnServeClientError, PermissionError):
    """PERMISSION_DENIED: a write without the write token, or to a server that takes no writes."""


class TooLargeError(KnnServeClientError):
    """RESOURCE_EXHAUSTED: a message or request exceeded the server's limits."""


class DeadlineExceededError(KnnServeClientError, TimeoutError):
    """DEADLINE_EXCEEDED: the call did not finish within its timeout."""


class ServerError(KnnServeClientError):
    """INTERNAL or any other code: a failure on the server (details are in its log)."""


# One row per status code: the exception the server maps to it, and the one the client raises for it.
_TABLE: tuple[tuple[type[Exception], grpc.StatusCode, type[KnnServeClientError]], ...] = (
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT, InvalidArgumentError),
    (ModelNotFoundError, grpc.StatusCode.NOT_FOUND, NotFoundError),
    (ModelsNotLoadedError, grpc.StatusCode.UNAVAILABLE, UnavailableError),
    (TokenRejectedError, grpc.StatusCode.UNAUTHENTICATED, UnauthenticatedError),
    (WriteRefusedError, grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError),
    (RequestTooLargeError, grpc.StatusCode.RESOURCE_EXHAUSTED, TooLargeError),
    (DeadlineExpiredError, grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError),
)
_CLIENT_ERRORS = {code: client for _, code, client in _TABLE}


@dataclass(frozen=True)
class MappedStatus:
    """A status code, the message the caller sees, and whether the server log needs the traceback."""

    code: grpc.StatusCode
    message: str
    log_traceback: bool = False


def status_for(error: BaseException) -> MappedStatus:
    """Map an exception to the status a caller receives; anything unexpected becomes INTERNAL."""
    for kind, code, _ in _TABLE:
        if isinstance(error, kind):
            return MappedStatus(code, str(error))
    return MappedStatus(grpc.StatusCode.INTERNAL, GENERIC_INTERNAL_MESSAGE, log_traceback=True)


def from_rpc_error(error: grpc.RpcError) -> KnnServeClientError:
    """Translate a grpc.RpcError (which is also a grpc.Call) into the matching client exception."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or ""
    request_id = None
    if hasattr(error, "trailing_metadata"):
        for key, value in error.trailing_metadata() or ():
            if key == REQUEST_ID_KEY:
                request_id = value if isinstance(value, str) else value.decode()
    return _CLIENT_ERRORS.get(code, ServerError)(code, details, request_id=request_id)


__all__ = [
    "GENERIC_INTERNAL_MESSAGE",
    "REQUEST_ID_KEY",
    "DeadlineExceededError",
    "InvalidArgumentError",
    "KnnServeClientError",
    "MappedStatus",
    "NotFoundError",
    "PermissionDeniedError",
    "ServerError",
    "TooLargeError",
    "UnauthenticatedError",
    "UnavailableError",
    "from_rpc_error",
    "status_for",
]
