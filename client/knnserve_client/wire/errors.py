"""Exceptions raised on purpose on either end of the wire; ``status.py`` maps each to one gRPC status code.

No grpc or protobuf import here: the server's core raises these without depending on the transport.
"""

from __future__ import annotations


class KnnServeError(Exception):
    """Base class of every error knnserve raises on purpose."""


class InvalidInputError(KnnServeError, ValueError):
    """A caller-supplied value is wrong; names the field, what was expected and what came."""

    def __init__(self, field: str, expected: str, got: object | None = None) -> None:
        self.field = field
        self.expected = expected
        self.got = got
        message = f"{field}: expected {expected}"
        if got is not None:
            message += f", got {got}"
        super().__init__(message)

    def renamed(self, field: str) -> InvalidInputError:
        """The same error naming another field (e.g. the wire's ``inputs.shape`` for the core's ``shape``)."""
        return InvalidInputError(field, self.expected, self.got)


class ModelNotFoundError(KnnServeError, LookupError):
    """No model of that name, or no such version of it."""


class ModelsNotLoadedError(KnnServeError):
    """The server has not finished loading its models (or is shutting down)."""


class RequestTooLargeError(KnnServeError):
    """A request carries more rows, bytes or neighbours than the server's limits allow."""


class DeadlineExpiredError(KnnServeError, TimeoutError):
    """The call's deadline passed before it could be answered."""


class TokenRejectedError(KnnServeError):
    """Missing or wrong bearer token."""


class WriteRefusedError(KnnServeError, PermissionError):
    """A write without the write token (a read token is not enough), or to a server that takes no writes."""


__all__ = [
    "DeadlineExpiredError",
    "InvalidInputError",
    "KnnServeError",
    "ModelNotFoundError",
    "ModelsNotLoadedError",
    "RequestTooLargeError",
    "TokenRejectedError",
    "WriteRefusedError",
]
