"""Write-ahead log: append-only checksummed records, group commit (one fsync for concurrent appends), torn-tail recovery.

File layout::

    MAGIC (8 bytes: b"KNNWAL01")
    record*   where record = header (16 bytes, little-endian) + payload
              header = u32 payload length | u32 CRC-32 of (seq as u64 + payload) | u64 seq

Sequence numbers start at 1 and rise by one per record; a record's *end offset* is the log position
readers catch up to. Opening a log replays it: every record whose length, checksum and sequence
number are right is kept; the first one that is not (a write cut short by a crash, or damaged bytes)
and everything after it is dropped (the file is truncated there) and logged. Such a record was never
acknowledged: :meth:`WriteAheadLog.commit` returns only after the record's bytes were fsynced, and a
caller acknowledges a write only after that.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = b"KNNWAL01"
HEADER = struct.Struct("<IIQ")
_SEQ = struct.Struct("<Q")
# A record this large would never be written (the callers' limits are far below it): a length
# field above it is damage, not a record.
MAX_RECORD_BYTES = 1 << 30


class LogError(Exception):
    """The log cannot be opened or written (not a log file, an I/O error, a failed fsync)."""


def checksum(seq: int, payload: bytes | memoryview) -> int:
    """CRC-32 of the sequence number (u64, little-endian) and the payload."""
    return zlib.crc32(payload, zlib.crc32(_SEQ.pack(seq))) & 0xFFFFFFFF


def encode_record(seq: int, payload: bytes) -> bytes:
    """One record's bytes: header then payload."""
    return HEADER.pack(len(payload), checksum(seq, payload), seq) + payload


@dataclass(frozen=True)
class LogRecord:
    """One record read back: its sequence number, payload and where it ends in the file."""

    seq: int
    payload: bytes
    end: int


@dataclass(frozen=True)
class ScanResult:
    """What a scan found: the good records, where they end, and what was dropped after them and why."""

    records: list[LogRecord]
    end: int
    dropped_bytes: int
    reason: str


def scan(data: bytes | memoryview, *, start: int = len(MAGIC), first_seq: int = 1) -> ScanResult:
    """Read records from ``data`` (a whole log file's bytes) from ``start``, expecting ``first_seq`` first.

    Stops at the first torn or damaged record; ``reason`` says what was wrong ("" when nothing was).
    """
    view = memoryview(data)
    records: list[LogRecord] = []
    offset, expected, size = start, first_seq, len(view)
    reason = ""
    while offset < size:
        if size - offset < HEADER.size:
            reason = f"a torn header ({size - offset} of {HEADER.size} bytes)"
            break
        length, crc, seq = HEADER.unpack_from(view, offset)
        body = offset + HEADER.size
        if length > MAX_RECORD_BYTES:
            reason = f"a record length of {length} bytes (damaged header)"
            break
        if body + length > size:
            reason = f"a torn record (seq {seq}: {size - body} of {length} payload bytes)"
            break
        payload = view[body : body + length]
        if checksum(seq, payload) != crc:
            reason = f"a checksum mismatch at seq {seq}"
            break
        if seq != expected:
            reason = f"seq {seq} where {expected} was expected"
            break
        records.append(LogRecord(seq, bytes(payload), body + length))
        offset, expected = body + length, expected + 1
    return ScanResult(records, offset, size - offset, reason)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteAheadLog:
    """An append-only log file; :meth:`append` writes a record, :meth:`commit` makes it durable.

    Opening replays the file (:attr:`replayed`) and truncates a torn or damaged tail. Thread-safe,
    and shared safely by processes (the workers of ``serve --workers``): appends happen inside
    :meth:`exclusive` (a thread lock and ``flock`` on the file), which first reads what other
    processes appended since. Concurrent commits share one fsync (group commit): the first caller
    syncs every record written so far, callers arriving meanwhile wait and are usually covered by
    the next single fsync. ``sync=False`` skips fsync (tests and benchmarks of everything else).
    """

    def __init__(self, path: str | Path, *, sync: bool = True) -> None:
        self.path = Path(path)
        self._sync = sync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._lock = threading.Lock()  # appends and catch-ups of this process
        self._cond = threading.Condition()  # the group commit
        self._end = len(MAGIC)
        self._written_seq = 0
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                self.replayed = self._recover()
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(self._fd)
            raise
        if self.replayed:
            self._written_seq, self._end = self.replayed[-1].seq, self.replayed[-1].end
        self._durable_seq = self._written_seq
        self._syncing = False
        self._failed: str | None = None
        self.syncs = 0  # fsyncs made (group commit makes fewer than appends)

    def _recover(self) -> list[LogRecord]:
        size = os.fstat(self._fd).st_size
        if size < len(MAGIC):
            if size:
                log.warning("%s: %d bytes, shorter than the log header: starting it again", self.path, size)
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, MAGIC, 0)
            self._fsync()
            _fsync_dir(self.path.parent)
            return []
        data = os.pread(self._fd, size, 0)
        if data[: len(MAGIC)] != MAGIC:
            raise LogError(f"{self.path}: not a knnserve write-ahead log (it does not start with {MAGIC!r})")
        found = scan(data)
        if found.dropped_bytes:
            self._drop_tail(found)
        return found.records

    def _drop_tail(self, found: ScanResult) -> None:
        log.warning("%s: dropped %d bytes after seq %d: %s (a write cut short, never acknowledged)",
                    self.path, found.dropped_bytes, found.records[-1].seq if found.records else self._written_seq,
                    found.reason)
        os.ftruncate(self._fd, found.end)
        self._fsync()

    def _fsync(self) -> None:
        if self._sync:
            os.fdatasync(self._fd)

    # -- facts ------------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Sequence number of the last record written or read (durable or not)."""
        return self._written_seq

    @property
    def durable_seq(self) -> int:
        """Sequence number up to which every record is on disk."""
        return self._durable_seq

    @property
    def size_bytes(self) -> int:
        """Bytes of the log this process has written or read."""
        return self._end

    def moved(self) -> bool:
        """True when the file holds bytes this process has not read (another process appended)."""
        return os.fstat(self._fd).st_size != self._end

    # -- writing ----------------------------------------------------------------------------------

    @contextmanager
    def exclusive(self) -> Iterator[list[LogRecord]]:
        """Hold the log for appending (this process's lock, then ``flock``); yields the records other
        processes appended since this one last read. A torn tail found here (no writer holds the
        lock, so nobody is still writing it) is dropped."""
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield self._catch_up(truncate=True)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _catch_up(self, *, truncate: bool) -> list[LogRecord]:
        size = os.fstat(self._fd).st_size
        if size == self._end:
            return []
        data = os.pread(self._fd, size - self._end, self._end)
        found = scan(data, start=0, first_seq=self._written_seq + 1)
        records = [LogRecord(r.seq, r.payload, r.end + self._end) for r in found.records]
        if records:
            self._written_seq, self._end = records[-1].seq, records[-1].end
        if found.dropped_bytes and truncate:
            self._drop_tail(ScanResult(records, self._end, found.dropped_bytes, found.reason))
        return records

    def append(self, payload: bytes) -> int:
        """Write one record (not yet durable) and return its sequence number; call inside :meth:`exclusive`."""
        if self._failed is not None:
            raise LogError(f"{self.path}: the log failed earlier and takes no writes ({self._failed})")
        seq = self._written_seq + 1
        data = encode_record(seq, payload)
        try:
            written = os.pwrite(self._fd, data, self._end)
            if written != len(data):
                raise OSError(f"short write: {written} of {len(data)} bytes")
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self._end)  # no partial record stays behind the next one
            except OSError:
                self._failed = str(exc)
            raise LogError(f"{self.path}: could not write a record: {exc}") from exc
        self._end += len(data)
        self._written_seq = seq
        return seq

    def commit(self, seq: int) -> None:
        """Return once the record ``seq`` (and every one before it) is on disk; one fsync serves many callers."""
        with self._cond:
            while self._durable_seq < seq:
                if self._failed is not None:
                    raise LogError(f"{self.path}: fsync failed ({self._failed}); the write is not durable")
                if self._syncing:
                    self._cond.wait()
                    continue
                self._syncing = True
                target = self._written_seq  # every record up to it was written before this fsync starts
                self._cond.release()
                error: OSError | None = None
                try:
                    self._fsync()
                except OSError as exc:
                    # After a failed fsync the kernel may have dropped the dirty pages: nothing written
                    # since the last good fsync can be trusted, so the log takes no more writes.
                    error = exc
                finally:
                    self._cond.acquire()
                self._syncing = False
                self.syncs += 1
                if error is not None:
                    self._failed = str(error)
                else:
                    self._durable_seq = max(self._durable_seq, target)
                self._cond.notify_all()

    def close(self) -> None:
        """Close the file (records already committed stay durable)."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


__all__ = ["HEADER", "MAGIC", "LogError", "LogRecord", "ScanResult", "WriteAheadLog", "checksum", "encode_record", "scan"]
