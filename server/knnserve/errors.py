"""Exception types of the core; the service maps each to one gRPC status code."""

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


class DatasetError(KnnServeError):
    """A dataset file is missing, malformed or fails its checksum; the message names the file."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset could not be found locally (and could not be downloaded); says how to get it."""


class BundleError(KnnServeError):
    """A model bundle is missing, partial, corrupt or of an unknown schema version."""
