"""The write-ahead log: records round-trip, a torn or corrupt tail is dropped, group commit shares fsyncs."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest

from knnserve.online.wal import HEADER, MAGIC, LogError, WriteAheadLog, scan


def _append(wal: WriteAheadLog, payload: bytes) -> int:
    with wal.exclusive():
        return wal.append(payload)


def _write(path: Path, payloads: list[bytes]) -> None:
    wal = WriteAheadLog(path)
    for payload in payloads:
        wal.commit(_append(wal, payload))
    wal.close()


def test_records_round_trip_in_order(tmp_path: Path) -> None:
    payloads = [b"a", b"", b"x" * 10_000]
    _write(tmp_path / "log", payloads)
    wal = WriteAheadLog(tmp_path / "log")
    assert [r.payload for r in wal.replayed] == payloads
    assert [r.seq for r in wal.replayed] == [1, 2, 3]
    assert _append(wal, b"next") == 4
    assert wal.durable_seq == 3


@pytest.mark.parametrize("cut", [1, HEADER.size - 1, HEADER.size, HEADER.size + 3])
def test_torn_tail_is_dropped_and_logged(tmp_path: Path, cut: int, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "log"
    _write(path, [b"first", b"second-record"])
    full = path.read_bytes()
    last = len(full) - (HEADER.size + len(b"second-record"))
    path.write_bytes(full[: last + cut])
    with caplog.at_level(logging.WARNING):
        wal = WriteAheadLog(path)
    assert [r.payload for r in wal.replayed] == [b"first"]
    assert "dropped" in caplog.text
    assert path.stat().st_size == last  # truncated: the next record follows the good ones
    wal.commit(_append(wal, b"again"))
    wal.close()
    assert [r.payload for r in WriteAheadLog(path).replayed] == [b"first", b"again"]


def test_corrupt_record_drops_it_and_everything_after(tmp_path: Path) -> None:
    path = tmp_path / "log"
    _write(path, [b"one", b"two", b"three"])
    data = bytearray(path.read_bytes())
    second = len(MAGIC) + HEADER.size + 3
    data[second + HEADER.size] ^= 0xFF  # a flipped payload byte of record 2
    path.write_bytes(bytes(data))
    wal = WriteAheadLog(path)
    assert [r.payload for r in wal.replayed] == [b"one"]


def test_a_wrong_sequence_number_ends_the_log(tmp_path: Path) -> None:
    from knnserve.online.wal import encode_record

    data = MAGIC + encode_record(1, b"a") + encode_record(3, b"c")
    found = scan(data)
    assert [r.seq for r in found.records] == [1]
    assert "expected" in found.reason


def test_not_a_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"something else entirely")
    with pytest.raises(LogError, match="not a knnserve write-ahead log"):
        WriteAheadLog(path)


def test_concurrent_commits_share_fsyncs(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "log")
    barrier = threading.Barrier(16)

    def writer() -> None:
        barrier.wait()
        for _ in range(20):
            wal.commit(_append(wal, os.urandom(64)))

    threads = [threading.Thread(target=writer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wal.durable_seq == 320
    assert wal.syncs < 320  # group commit: fewer fsyncs than records
    wal.close()
    assert len(WriteAheadLog(tmp_path / "log").replayed) == 320


def test_two_handles_share_a_log_like_two_processes(tmp_path: Path) -> None:
    first, second = WriteAheadLog(tmp_path / "log"), WriteAheadLog(tmp_path / "log")
    first.commit(_append(first, b"from first"))
    assert second.moved()
    with second.exclusive() as theirs:
        assert [r.payload for r in theirs] == [b"from first"]
        seq = second.append(b"from second")
    assert seq == 2
    with first.exclusive() as theirs:
        assert [(r.seq, r.payload) for r in theirs] == [(2, b"from second")]
    assert not first.moved()
