"""What the write RPCs answer (AddExamples, RemoveExamples, SnapshotModel) and a model's online state: plain types.

No protobuf here: ``wire.v1.codec`` maps them to and from their messages.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class AddResult:
    """An acknowledged AddExamples: the ids the rows got and the write's log position."""

    model: str
    version: int
    ids: np.ndarray
    log_position: int
    duplicate: bool = False


@dataclass(frozen=True)
class RemoveResult:
    """An acknowledged RemoveExamples."""

    model: str
    version: int
    log_position: int
    duplicate: bool = False


@dataclass(frozen=True)
class SnapshotResult:
    """A snapshot written and served: its version, the version it folds, and its row count."""

    model: str
    version: int
    previous_version: int
    ntotal: int


@dataclass(frozen=True)
class OnlineInfo:
    """What changed in a served version since its bundle (GetModel), and the write limits.

    ``head_classes``: per head, how many classes it knows (class indices 0 .. known - 1).
    """

    writable: bool
    added: int
    removed: int
    log_position: int
    log_bytes: int
    max_log_bytes: int
    max_rows_per_add: int
    head_classes: tuple[tuple[str, int], ...]


__all__ = ["AddResult", "OnlineInfo", "RemoveResult", "SnapshotResult"]
