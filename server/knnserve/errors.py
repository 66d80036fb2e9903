"""Exception types of the server: the wire's shared ones re-exported, plus data and bundle errors.

``KnnServeError`` and ``InvalidInputError`` live in the wire package (``knnserve_client.wire.errors``)
so that both ends raise and map the same classes; ``knnserve_client.wire.status`` is the one place
that maps exceptions to gRPC status codes.
"""

from __future__ import annotations

from knnserve_client.wire.errors import InvalidInputError, KnnServeError


class DatasetError(KnnServeError):
    """A dataset file is missing, malformed or fails its checksum; the message names the file."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset could not be found locally (and could not be downloaded); says how to get it."""


class BundleError(KnnServeError):
    """A model bundle is missing, partial, corrupt or of an unknown schema version."""


class MissingExtraError(KnnServeError):
    """An optional dependency (a distribution extra such as ``knnserve[cnn]``) is not installed."""


__all__ = ["BundleError", "DatasetError", "DatasetNotFoundError", "InvalidInputError", "KnnServeError", "MissingExtraError"]
