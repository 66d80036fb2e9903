"""The error an engine raises when the cluster or server it needs cannot be reached (the CLI exits 3)."""

from __future__ import annotations

from knnserve.errors import KnnServeError


class ClusterError(KnnServeError):
    """A Ray cluster could not be joined or started; the message says what to check."""


__all__ = ["ClusterError"]
