"""knnserve_client: a small Python client for the knnserve gRPC service (numpy in, numpy out).

Names are imported lazily (PEP 562), so ``import knnserve_client.wire.query`` (which the server's
numpy core uses) loads neither grpc nor protobuf. Importing this package changes nothing in the
process's environment.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on first use
    from knnserve_client.channel import RetryPolicy
    from knnserve_client.client import Client
    from knnserve_client.wire.errors import InvalidInputError
    from knnserve_client.wire.examples import AddResult, OnlineInfo, RemoveResult, SnapshotResult
    from knnserve_client.wire.limits import ServerLimits
    from knnserve_client.wire.model_info import IndexInfo, ModelInfo
    from knnserve_client.wire.results import ClassifyResult, HeadResult, Neighbors, SearchResult
    from knnserve_client.wire.query import KnnQuery
    from knnserve_client.wire.status import (
        DeadlineExceededError,
        InvalidArgumentError,
        KnnServeClientError,
        NotFoundError,
        PermissionDeniedError,
        ServerError,
        TooLargeError,
        UnauthenticatedError,
        UnavailableError,
    )

_EXPORTS = {
    "Client": "client",
    "RetryPolicy": "channel",
    "KnnQuery": "wire.query",
    "ServerLimits": "wire.limits",
    "ClassifyResult": "wire.results",
    "HeadResult": "wire.results",
    "IndexInfo": "wire.model_info",
    "ModelInfo": "wire.model_info",
    "Neighbors": "wire.results",
    "SearchResult": "wire.results",
    "DeadlineExceededError": "wire.status",
    "InvalidArgumentError": "wire.status",
    "KnnServeClientError": "wire.status",
    "NotFoundError": "wire.status",
    "PermissionDeniedError": "wire.status",
    "AddResult": "wire.examples",
    "OnlineInfo": "wire.examples",
    "RemoveResult": "wire.examples",
    "SnapshotResult": "wire.examples",
    "ServerError": "wire.status",
    "TooLargeError": "wire.status",
    "UnauthenticatedError": "wire.status",
    "UnavailableError": "wire.status",
    "InvalidInputError": "wire.errors",
}

__version__ = "0.1.0"
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"knnserve_client.{_EXPORTS[name]}"), name)
