"""knnserve_client: a small Python client for the knnserve gRPC service (numpy in, numpy out)."""

from knnserve_client.channel import RetryPolicy
from knnserve_client.client import Client
from knnserve_client.errors import (
    DeadlineExceededError,
    InvalidArgumentError,
    KnnServeClientError,
    NotFoundError,
    ServerError,
    TooLargeError,
    UnauthenticatedError,
    UnavailableError,
)
from knnserve_client.results import (
    ClassifyResult,
    EffectiveParams,
    HeadResult,
    IndexInfo,
    ModelDefaults,
    ModelInfo,
    Neighbors,
    SearchResult,
    ServerLimits,
)

__all__ = [
    "ClassifyResult",
    "Client",
    "DeadlineExceededError",
    "EffectiveParams",
    "HeadResult",
    "IndexInfo",
    "InvalidArgumentError",
    "KnnServeClientError",
    "ModelDefaults",
    "ModelInfo",
    "Neighbors",
    "NotFoundError",
    "RetryPolicy",
    "SearchResult",
    "ServerError",
    "ServerLimits",
    "TooLargeError",
    "UnauthenticatedError",
    "UnavailableError",
]
