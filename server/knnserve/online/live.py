"""LiveModel: a loaded KNNModel that learns while it serves — examples added and removed, logged before acknowledged.

A write goes through four steps: validate (nothing is logged for a bad input); under one lock, give
the rows their ids and new class names their indices and append the record to the write-ahead log
(so the log's order is the order of ids); wait for the group fsync (``WriteAheadLog.commit``); apply
every committed record in log order to the index under the exclusive side of a readers-writer lock
(searches hold the shared side). Only then is the write acknowledged, so a search that starts after
the acknowledgement sees it. Replaying the log at start runs the same apply step, so a replayed
model equals the live one it was logged from.

* Adds go into the FAISS index itself (``index.add``) for every kind (Flat, IVF, IVF-PQ, HNSW), with
  ids ntotal, ntotal + 1, ...; a new class name gets the next class index. The k-NN head votes for it
  at once; the linear head knows only the classes it was trained on (``head_classes``).
* Removals hide ids from every search at once (a FAISS ID selector); the rows stay in the index until
  :meth:`snapshot` writes a bundle without them.
* The integer search kernels (``knnserve.kernels``) hold a copy of the bundle's vectors. For a raw-uint8
  Flat bundle (the exact-int8 kernel) the added rows are searched exactly beside it and the results
  merged (``delta.py``), so batches keep the kernel; with removals, or for IVF kernels, or once a row
  that is not bytes was added, searches go to FAISS until the snapshot is served.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from knnserve.errors import InvalidInputError
from knnserve.index import backend
from knnserve.kernels.choice import EXACT_INT8
from knnserve.model import KNNModel
from knnserve.online.config import OnlineLimits
from knnserve.online.delta import MAX_DIM, AddedRows, merge
from knnserve.online.records import Added, Change, Removed, Sealed, compact_vectors, decode, encode
from knnserve.online.rwlock import ReadWriteLock
from knnserve.online.wal import LogError, LogRecord, WriteAheadLog
from knnserve_client.wire.errors import ModelsNotLoadedError, RequestTooLargeError
from knnserve_client.wire.examples import OnlineInfo
from knnserve_client.wire.query import KnnQuery

log = logging.getLogger(__name__)

MAX_LABEL_CHARS = 256
MAX_REQUEST_ID_CHARS = 128


@dataclass(frozen=True)
class WriteResult:
    """An acknowledged write: the ids it added (empty for a removal), its log position, and whether it was a retry."""

    ids: np.ndarray
    position: int
    duplicate: bool = False


class ModelMovedError(ModelsNotLoadedError):
    """This version took a snapshot and takes no more writes; the next version does (retry)."""


def check_request_id(request_id: str) -> str:
    """A request id as given: empty (no deduplication) or a printable string of at most 128 characters."""
    if len(request_id) > MAX_REQUEST_ID_CHARS or not request_id.isprintable():
        raise InvalidInputError("request_id", f"a printable string of at most {MAX_REQUEST_ID_CHARS} characters",
                                f"{len(request_id)} characters")
    return request_id


def check_labels(labels: Any, rows: int) -> tuple[str, ...]:
    """One non-empty class name (printable, at most 256 characters) per row."""
    names = tuple(labels)
    if len(names) != rows:
        raise InvalidInputError("labels", f"one class name per input row ({rows})", f"{len(names)} labels")
    for number, name in enumerate(names):
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_LABEL_CHARS or not name.isprintable():
            raise InvalidInputError(f"labels[{number}]", f"a non-empty printable class name of at most {MAX_LABEL_CHARS} characters",
                                    repr(name)[:80])
    return names


class _Labels:
    """The label of every id, grown by doubling; ``view`` is what the model votes with (prefix-stable)."""

    def __init__(self, labels: np.ndarray) -> None:
        self._buffer = np.array(labels, dtype=np.int64)
        self.size = labels.shape[0]

    def extend(self, values: np.ndarray) -> np.ndarray:
        needed = self.size + values.shape[0]
        if needed > self._buffer.shape[0]:
            grown = np.empty(max(needed, 2 * self._buffer.shape[0], 1024), dtype=np.int64)
            grown[: self.size] = self._buffer[: self.size]
            self._buffer = grown
        self._buffer[self.size : needed] = values
        self.size = needed
        return self._buffer[:needed]


class LiveModel:
    """Adds and removals on a served model, durable in a write-ahead log at ``log_path`` (replayed here).

    ``model`` must hold its index in memory (loaded without ``mmap``): FAISS cannot add to a mapped one.
    ``sync=False`` skips fsync (tests of everything else).
    """

    def __init__(self, model: KNNModel, log_path: str | Path, *, limits: OnlineLimits | None = None,
                 sync: bool = True, on_sealed: Callable[[], None] | None = None) -> None:
        self.model = model
        self._on_sealed = on_sealed
        self.limits = limits or OnlineLimits()
        self.base_rows = model.ntotal
        self._rw = ReadWriteLock()
        self._write = threading.Lock()  # ids, class indices and log order are given out under it
        self._apply = threading.Lock()
        self._labels = _Labels(model.labels)
        self._next_id = model.ntotal
        self._class_index = {name: number for number, name in reversed(list(enumerate(model.class_names)))}
        self._removed = np.zeros(0, dtype=np.int64)
        self._exclusion: backend.Exclusion | None = None
        self._requests: dict[str, WriteResult] = {}
        self._pending: dict[int, Change] = {}
        self._applied = 0
        self._theirs = 0  # the last record read from another process's appends
        self.added = 0
        self._sealed: str | None = None
        # The added rows, for searching beside the bundle's exact-int8 kernel (None: FAISS searches them).
        exact = model.kernel_plan.name == EXACT_INT8 and int(model.index.d) <= MAX_DIM
        self._delta: AddedRows | None = AddedRows(int(model.index.d), model.ntotal) if exact else None
        if exact:
            model.warm_kernel()  # built now, from the bundle's rows only (it copies the index's vectors)
        self._wal = WriteAheadLog(log_path, sync=sync)
        try:
            self._replay()
        except BaseException:
            self._wal.close()
            raise
        model.overlay = self

    # -- replay -------------------------------------------------------------------------------------

    def _replay(self) -> None:
        changes: list[Change] = []
        for record in self._wal.replayed:
            change = decode(record.payload)
            self._register(change, record.seq)
            if not isinstance(change, Sealed):
                changes.append(change)
        # Consecutive adds go to FAISS in one call (much faster than one call per record).
        run: list[Added] = []
        for change in [*changes, None]:
            if isinstance(change, Added):
                run.append(change)
                continue
            if run:
                self._apply_adds(run)
                run = []
            if change is not None:
                self._apply_change(change)
        self._applied = self._wal.durable_seq
        if changes:
            log.info("replayed %s: %d records, %d rows added, %d removed", self._wal.path, len(changes), self.added,
                     self._removed.size)

    def _register(self, change: Change, seq: int) -> WriteResult:
        """Give a logged change its ids and class indices (log order); called under the write lock or in replay."""
        if isinstance(change, Sealed):
            self._sealed = f"this version took a snapshot, written to {change.target}; writes go to the next version (retry)"
            return WriteResult(np.zeros(0, dtype=np.int64), seq)
        if isinstance(change, Added):
            if change.first_id != self._next_id:
                raise LogError(f"{self._wal.path}: a record adds ids from {change.first_id} where {self._next_id} was "
                               "next: the log does not belong to this bundle")
            self._next_id += change.vectors.shape[0]
            for name in change.labels:
                if name not in self._class_index:
                    self._class_index[name] = len(self._class_index)
                    self.model.class_names = (*self.model.class_names, name)
            result = WriteResult(change.ids, seq)
        else:
            result = WriteResult(np.zeros(0, dtype=np.int64), seq)
        if change.request_id:
            self._requests[change.request_id] = result
        return result

    # -- writes ---------------------------------------------------------------------------------------

    def add(self, prepared: np.ndarray, labels: Any, *, request_id: str = "") -> WriteResult:
        """Add rows (``KNNModel.prepare``'d inputs) with class names; returns once durable and searchable."""
        check_request_id(request_id)
        rows = prepared.shape[0]
        if rows > self.limits.max_rows_per_add:
            raise RequestTooLargeError(f"inputs: {rows} rows exceed the limit of {self.limits.max_rows_per_add} rows per add")
        names = check_labels(labels, rows)
        done = self._retried(request_id)
        if done is not None:
            return done
        vectors = compact_vectors(self.model.vectors(prepared))  # the extractor runs outside every lock
        if not np.isfinite(vectors).all():
            raise InvalidInputError("inputs", "rows whose features are finite", "NaN or infinity after the extractor")
        return self._log(lambda: Added(self._next_id, vectors, names, request_id), request_id)

    def remove(self, ids: Any, *, request_id: str = "") -> WriteResult:
        """Hide ids (training rows or added ones) from every search; returns once durable."""
        check_request_id(request_id)
        wanted = np.asarray(ids)
        if wanted.ndim != 1 or wanted.size == 0 or wanted.dtype.kind not in "iu":
            raise InvalidInputError("ids", "a non-empty list of integer ids", f"{wanted.dtype} shape {wanted.shape}")
        if wanted.size > self.limits.max_rows_per_add:
            raise RequestTooLargeError(f"ids: {wanted.size} ids exceed the limit of {self.limits.max_rows_per_add} per request")
        wanted = wanted.astype(np.int64)
        done = self._retried(request_id)
        if done is not None:
            return done

        def change() -> Removed:
            bad = wanted[(wanted < 0) | (wanted >= self._next_id)]
            if bad.size:
                raise InvalidInputError("ids", f"ids of indexed examples, 0 <= id < {self._next_id}", int(bad[0]))
            return Removed(np.unique(wanted), request_id)

        return self._log(change, request_id)

    def _retried(self, request_id: str) -> WriteResult | None:
        found = self._requests.get(request_id) if request_id else None
        if found is None:
            return None
        self._finish(found.position)  # the first try may still be waiting for its fsync
        return WriteResult(found.ids, found.position, duplicate=True)

    def _log(self, make: Any, request_id: str) -> WriteResult:
        sealed = False
        with self._write, self._wal.exclusive() as theirs:
            sealed = self._take(theirs)
            if self._sealed is not None:
                error = ModelMovedError(self._sealed)
            elif request_id and request_id in self._requests:
                first = self._requests[request_id]
                result, error = WriteResult(first.ids, first.position, duplicate=True), None
            elif self._wal.size_bytes >= self.limits.max_log_bytes:
                error = RequestTooLargeError(
                    f"the write-ahead log holds {self._wal.size_bytes} bytes, the limit is {self.limits.max_log_bytes}: "
                    "take a snapshot (knnserve examples snapshot) to fold it into the next bundle version")
            else:
                change = make()  # validation that depends on the state (ids known) runs here
                seq = self._wal.append(encode(change))
                result, error = self._register(change, seq), None
                self._pending[seq] = change
        if sealed and self._on_sealed is not None:
            self._on_sealed()
        if error is not None:
            raise error
        self._finish(result.position)
        return result

    def _take(self, records: list[LogRecord]) -> bool:
        """Register records other processes appended (under the write lock); True when one sealed the log."""
        sealed = False
        for record in records:
            change = decode(record.payload)
            self._register(change, record.seq)
            if isinstance(change, Sealed):
                sealed = True
            self._pending[record.seq] = change
            self._theirs = record.seq
        return sealed

    def poll(self) -> None:
        """:meth:`catch_up` when the log file grew, or wait for a catch-up in progress elsewhere to apply
        what it read (a no-op costing one ``fstat`` otherwise)."""
        if self._wal.moved():
            self.catch_up()
            return
        # A catch-up on another thread (the log watcher's) may have read the file, so it no longer
        # looks moved, without having registered its records yet: it does both under the write lock,
        # so taking that lock waits it out (uncontended, a fraction of a microsecond).
        with self._write:
            behind = self._applied < self._theirs
        if behind:
            self._finish(self._theirs)

    def catch_up(self) -> None:
        """Apply what other processes appended to the shared log (``serve --workers``), before a search."""
        with self._write, self._wal.exclusive() as theirs:
            sealed = self._take(theirs)
        if theirs:
            self._finish(theirs[-1].seq)
        if sealed and self._on_sealed is not None:
            self._on_sealed()

    def _finish(self, seq: int) -> None:
        """Wait until record ``seq`` is durable, then apply every committed record up to it, in log order."""
        self._wal.commit(seq)
        with self._apply:
            if self._applied >= seq:
                return
            durable = self._wal.durable_seq
            changes: list[Change] = []
            next_seq = self._applied + 1
            while next_seq <= durable and next_seq in self._pending:
                changes.append(self._pending.pop(next_seq))
                next_seq += 1
            with self._rw.write():
                for change in changes:
                    self._apply_change(change)
            self._applied = next_seq - 1

    def _apply_change(self, change: Change) -> None:
        if isinstance(change, Sealed):
            return
        if isinstance(change, Added):
            self._apply_adds([change])
            return
        self._removed = np.union1d(self._removed, change.ids)
        self._exclusion = backend.Exclusion(self._removed)

    def _apply_adds(self, adds: list[Added]) -> None:
        vectors = adds[0].vectors if len(adds) == 1 else np.concatenate([a.vectors.astype(np.float32) for a in adds])
        index = self.model.index
        if int(index.ntotal) != adds[0].first_id:
            raise LogError(f"the index holds {index.ntotal} rows where the log adds from id {adds[0].first_id}")
        backend.add(index, vectors.astype(np.float32, copy=False))
        if self._delta is not None:
            if all(a.vectors.dtype == np.uint8 for a in adds):
                self._delta.extend(vectors)
            else:
                self._delta = None  # rows that are not bytes: the kernel's exact arithmetic does not cover them
        labels = np.fromiter((self._class_index[name] for a in adds for name in a.labels), dtype=np.int64)
        self.model.labels = self._labels.extend(labels)
        self.added += labels.shape[0]

    # -- reads ----------------------------------------------------------------------------------------

    def search(self, rows: np.ndarray, query: KnnQuery) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's raw (distances, ids) over the live rows (added ones in, removed ones out).

        Another process's acknowledged writes are in the log file before this search starts: when the
        file grew, they are applied first (one ``fstat`` per search otherwise).
        """
        self.poll()
        with self._rw.read():
            delta = self._delta
            if self.added and self._exclusion is None and delta is not None and (query.k or 0) <= self.base_rows:
                found = self.model.exact_kernel_search(rows, query)
                if found is not None:  # a batch the kernel takes: the added rows searched beside it
                    return merge(found, delta.search(rows, query.k or 0), query.k or 0)
            changed = self.added > 0 or self._exclusion is not None
            return self.model.search_index(rows, query, exclude=self._exclusion, kernels=not changed)

    @property
    def removed(self) -> np.ndarray:
        """Ids removed since the bundle, sorted."""
        return self._removed

    def state(self) -> OnlineInfo:
        """Counts since the bundle, the log position and size, the limits and the classes each head knows."""
        return OnlineInfo(self._sealed is None, self.added, int(self._removed.size), self._applied, self._wal.size_bytes,
                          self.limits.max_log_bytes, self.limits.max_rows_per_add, self.model.head_classes())

    # -- snapshot -------------------------------------------------------------------------------------

    def snapshot(self, target: str | Path, *, name: str | None = None) -> KNNModel:
        """Write bundle + log as a new bundle at ``target`` (atomically), removed rows dropped; this model then takes no writes.

        Extractor, preprocessing, linear head, defaults and dataset are carried over. Searches go on
        meanwhile; writes wait (every process's: the log is held), then are told to retry on the
        next version. A seal record ends the log, so other processes stop taking writes too.
        """
        with self._write, self._wal.exclusive() as theirs:
            self._take(theirs)
            if self._sealed is not None:
                raise ModelMovedError(self._sealed)
            self._finish(self._wal.last_seq)
            copy = self._folded()
            manifest = self.model.manifest
            extra = dict(manifest.extra) if manifest is not None else {}
            extra["online"] = {"base_rows": self.base_rows, "added": self.added, "removed": int(self._removed.size),
                               "log": str(self._wal.path), "log_position": self._applied}
            copy.save(target, name=name or (manifest.name if manifest is not None else "model"),
                      dataset=manifest.dataset if manifest is not None else None,
                      metrics=dict(manifest.metrics) if manifest is not None else None, extra=extra)
            seal = Sealed(str(target))
            seq = self._wal.append(encode(seal))
            self._register(seal, seq)
            self._pending[seq] = seal
            self._finish(seq)
            return copy

    def _folded(self) -> KNNModel:
        """The model as it stands, removed rows dropped (ids renumbered), as a new KNNModel."""
        model = self.model
        with self._rw.read():
            index = backend.compacted(model.index, self._removed)
            keep = np.ones(self._labels.size, dtype=bool)
            keep[self._removed] = False
            labels = model.labels[keep].copy()
        info = model.index_info.model_copy(update={"ntotal": int(index.ntotal), "serialized_bytes": backend.serialized_size(index)})
        return KNNModel(index=index, labels=labels, class_names=model.class_names, input_shape=model.input_shape,
                        input_dtype=str(model.input_dtype), index_info=info, defaults=model.defaults,
                        manifest=model.manifest, preprocessor=model.preprocessor, linear=model.linear,
                        extractor=model.extractor, kernel="faiss")

    def close(self) -> None:
        """Close the log file."""
        self._wal.close()


__all__ = ["LiveModel", "ModelMovedError", "OnlineLimits", "WriteResult", "check_labels", "check_request_id"]
