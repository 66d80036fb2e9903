"""Writes to served models, protocol-neutral: examples added and removed, snapshots, and each model's online state.

Every write goes to a model's newest version (its ``LiveModel``). The checks run here, before
anything is logged: the server takes writes (else WriteRefusedError), the model exists
(NOT_FOUND), rows per add (RESOURCE_EXHAUSTED), the rows themselves (``KNNModel.prepare``), labels,
ids and request id (``LiveModel``). No gRPC here.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from knnserve.dataplane.registry import ModelRegistry, ServedModel
from knnserve.versions import bundle_version, next_version
from knnserve_client.wire.errors import InvalidInputError, RequestTooLargeError, WriteRefusedError
from knnserve_client.wire.examples import AddResult, OnlineInfo, RemoveResult, SnapshotResult

NO_WRITES = "this server takes no writes (start it with --online-dir DIR --write-token-file FILE)"


class ExampleWriter:
    """AddExamples, RemoveExamples and SnapshotModel over the registry's newest versions."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self._snapshot_lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """True when the server takes writes."""
        return self.registry.online is not None

    def _live(self, name: str) -> ServedModel:
        if not self.enabled:
            raise WriteRefusedError(NO_WRITES)
        served = self.registry.get(name)
        if served.live is None:
            raise WriteRefusedError(f"model {name!r} version {served.version} takes no writes")
        return served

    def add(self, name: str, inputs: np.ndarray, labels: Sequence[str], *, request_id: str = "") -> AddResult:
        """Add labelled rows (in the model's input space) to the newest version; returns once durable and searchable."""
        served = self._live(name)
        limit = served.live.limits.max_rows_per_add
        rows = inputs.shape[0] if inputs.ndim else 0
        if rows > limit:
            raise RequestTooLargeError(f"inputs: {rows} rows exceed the limit of {limit} rows per add; split the input")
        prepared = served.model.prepare(inputs, field="inputs")
        result = served.live.add(prepared, labels, request_id=request_id)
        return AddResult(served.name, served.version, result.ids, result.position, result.duplicate)

    def remove(self, name: str, ids: Sequence[int] | np.ndarray, *, request_id: str = "") -> RemoveResult:
        """Hide ids from every search of the newest version; returns once durable."""
        served = self._live(name)
        result = served.live.remove(np.asarray(ids, dtype=np.int64), request_id=request_id)
        return RemoveResult(served.name, served.version, result.position, result.duplicate)

    def snapshot(self, name: str) -> SnapshotResult:
        """Write the newest version's bundle + log as the next version and serve it (with an empty log)."""
        served = self._live(name)
        models_dir = self.registry.models_dir
        if models_dir is None:
            raise InvalidInputError("model", "a model served from --models FOLDER (snapshots are written as its next "
                                    "version folder)", "a server started with --model BUNDLE")
        with self._snapshot_lock:
            served = self._live(name)
            target = next_version(Path(models_dir) / served.name)
            snap = served.live.snapshot(target, name=served.name)
            self.registry.reload()
        return SnapshotResult(served.name, bundle_version(target), served.version, snap.ntotal)

    def state(self, served: ServedModel) -> OnlineInfo | None:
        """The online state of one served version (None on a server that takes no writes)."""
        if not self.enabled:
            return None
        live = served.live
        if live is None:
            limits = self.registry.online.limits
            return OnlineInfo(False, 0, 0, 0, 0, limits.max_log_bytes, limits.max_rows_per_add, served.model.head_classes())
        return live.state()


__all__ = ["NO_WRITES", "ExampleWriter"]
