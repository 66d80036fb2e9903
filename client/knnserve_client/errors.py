"""The client's exception types: one per status code a caller handles differently, each keeping the code."""

from __future__ import annotations

import grpc


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


class TooLargeError(KnnServeClientError):
    """RESOURCE_EXHAUSTED: a message or request exceeded the server's limits."""


class DeadlineExceededError(KnnServeClientError, TimeoutError):
    """DEADLINE_EXCEEDED: the call did not finish within its timeout."""


class ServerError(KnnServeClientError):
    """INTERNAL or any other code: a failure on the server (details are in its log)."""


_BY_CODE: dict[grpc.StatusCode, type[KnnServeClientError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: TooLargeError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def from_rpc_error(error: grpc.RpcError) -> KnnServeClientError:
    """Translate a grpc.RpcError (which is also a grpc.Call) into the matching client exception."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or ""
    request_id = None
    if hasattr(error, "trailing_metadata"):
        for key, value in error.trailing_metadata() or ():
            if key == "x-request-id":
                request_id = value if isinstance(value, str) else value.decode()
    return _BY_CODE.get(code, ServerError)(code, details, request_id=request_id)


__all__ = [
    "DeadlineExceededError",
    "InvalidArgumentError",
    "KnnServeClientError",
    "NotFoundError",
    "ServerError",
    "TooLargeError",
    "UnauthenticatedError",
    "UnavailableError",
    "from_rpc_error",
]
