"""Types of the write RPCs (AddExamples, RemoveExamples, SnapshotModel) and a model's online state, mirroring their messages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knnserve_client.wire.enums import HEADS
from knnserve_client.wire.messages import head_classes_from
from knnserve_client.wire.tensors import from_tensor, to_tensor
from knnserve_client.wire.v1 import knnserve_pb2 as pb


def _head_classes_into(message: pb.ClassifyResponse | pb.OnlineState, pairs: tuple[tuple[str, int], ...]) -> None:
    for head, known in pairs:
        message.head_classes.add(head=HEADS.to_wire(head), known=known)


@dataclass(frozen=True, eq=False)
class AddResult:
    """An acknowledged AddExamples: the ids the rows got and the write's log position."""

    model: str
    version: int
    ids: np.ndarray
    log_position: int
    duplicate: bool = False

    def to_proto(self) -> pb.AddExamplesResponse:
        """The AddExamplesResponse message."""
        return pb.AddExamplesResponse(model=self.model, version=self.version, ids=to_tensor(self.ids.astype(np.int64)),
                                      log_position=self.log_position, duplicate=self.duplicate)

    @classmethod
    def from_proto(cls, message: pb.AddExamplesResponse) -> AddResult:
        """Decode an AddExamplesResponse."""
        ids = from_tensor(message.ids, field="ids").copy()
        return cls(message.model, message.version, ids, message.log_position, message.duplicate)


@dataclass(frozen=True)
class RemoveResult:
    """An acknowledged RemoveExamples."""

    model: str
    version: int
    log_position: int
    duplicate: bool = False

    def to_proto(self) -> pb.RemoveExamplesResponse:
        """The RemoveExamplesResponse message."""
        return pb.RemoveExamplesResponse(model=self.model, version=self.version, log_position=self.log_position,
                                         duplicate=self.duplicate)

    @classmethod
    def from_proto(cls, message: pb.RemoveExamplesResponse) -> RemoveResult:
        """Decode a RemoveExamplesResponse."""
        return cls(message.model, message.version, message.log_position, message.duplicate)


@dataclass(frozen=True)
class SnapshotResult:
    """A snapshot written and served: its version, the version it folds, and its row count."""

    model: str
    version: int
    previous_version: int
    ntotal: int

    def to_proto(self) -> pb.SnapshotModelResponse:
        """The SnapshotModelResponse message."""
        return pb.SnapshotModelResponse(model=self.model, version=self.version, previous_version=self.previous_version,
                                        ntotal=self.ntotal)

    @classmethod
    def from_proto(cls, message: pb.SnapshotModelResponse) -> SnapshotResult:
        """Decode a SnapshotModelResponse."""
        return cls(message.model, message.version, message.previous_version, message.ntotal)


@dataclass(frozen=True)
class OnlineInfo:
    """What changed in a served version since its bundle (GetModel), and the write limits."""

    writable: bool
    added: int
    removed: int
    log_position: int
    log_bytes: int
    max_log_bytes: int
    max_rows_per_add: int
    head_classes: tuple[tuple[str, int], ...]

    def to_proto(self) -> pb.OnlineState:
        """The OnlineState message."""
        message = pb.OnlineState(writable=self.writable, added=self.added, removed=self.removed,
                                 log_position=self.log_position, log_bytes=self.log_bytes,
                                 max_log_bytes=self.max_log_bytes, max_rows_per_add=self.max_rows_per_add)
        _head_classes_into(message, self.head_classes)
        return message

    @classmethod
    def from_proto(cls, message: pb.OnlineState) -> OnlineInfo:
        """Decode an OnlineState."""
        return cls(message.writable, message.added, message.removed, message.log_position, message.log_bytes,
                   message.max_log_bytes, message.max_rows_per_add, head_classes_from(message.head_classes))


__all__ = ["AddResult", "OnlineInfo", "RemoveResult", "SnapshotResult"]
