"""Learning while serving: examples added to and removed from a live model, durable in a write-ahead log.

``wal`` (the log file: checksummed records, group commit, torn-tail recovery), ``records`` (what a
record holds), ``rwlock`` (searches beside index changes), ``live`` (the model that takes writes).
No gRPC or protobuf here.
"""

from __future__ import annotations

from knnserve.online.live import LiveModel, ModelMovedError, OnlineLimits, OnlineState, WriteResult
from knnserve.online.wal import LogError, WriteAheadLog

__all__ = ["LiveModel", "LogError", "ModelMovedError", "OnlineLimits", "OnlineState", "WriteAheadLog", "WriteResult"]
