"""Learning while serving: examples added to and removed from a live model, durable in a write-ahead log.

``wal`` (the log file: checksummed records, group commit, torn-tail recovery), ``records`` (what a
record holds), ``rwlock`` (searches beside index changes), ``live`` (the model that takes writes),
``config`` (settings). No gRPC or protobuf here. Names load their module on first use (the
``--workers`` supervisor reads ``config`` without loading faiss).
"""

from __future__ import annotations

from knnserve.lazy import lazy_exports

_HOMES = {
    "config": ("OnlineConfig", "OnlineLimits"),
    "live": ("LiveModel", "ModelMovedError", "WriteResult"),
    "wal": ("LogError", "WriteAheadLog"),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _HOMES, globals())
