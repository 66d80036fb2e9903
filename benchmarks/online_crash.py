"""kill -9 rounds under concurrent writers: every acknowledged add present after the restart, none twice.

One round: start ``knnserve serve --online-dir`` (a subprocess), let ``writers`` threads add rows
(one AddExamples call at a time each, every call with its own request id and a row no other call
has), kill the server with SIGKILL while they write, start it again (it replays its log), retry
every call that was in flight at the kill with the same request id, then check:

* acknowledged: calls answered OK (before the kill, and the retries after it);
* present: acknowledged rows found at distance 0 under the id their answer gave;
* duplicated: rows the index holds beyond one per distinct call (a retry applied twice).

Used by ``bench_online.py`` (10 rounds, 16 writers) and the service tests (fewer rounds).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from servers import start_knnserve, stop

DIM_OFFSET = 50.0
SAME_ROW = 0.5


@dataclass
class RoundCounts:
    """What one kill -9 round saw."""

    acknowledged: int = 0
    in_flight: int = 0
    retried_duplicate: int = 0
    present: int = 0
    missing: int = 0
    duplicated: int = 0
    replay_s: float = 0.0


def unique_row(round_number: int, writer: int, number: int, dim: int) -> np.ndarray:
    """A row no other call of any round sends (seeded by the call), far from the training rows."""
    rng = np.random.default_rng((round_number, writer, number))
    return (DIM_OFFSET + rng.normal(size=(1, dim))).astype(np.float32)


@dataclass
class _Writer:
    acked: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)
    pending: tuple[str, np.ndarray, str] | None = None


def serve_args(models: Path, logs: Path, token_file: Path) -> tuple[str, ...]:
    """``knnserve serve`` arguments for a server that takes writes."""
    return ("--models", str(models), "--online-dir", str(logs), "--write-token-file", str(token_file))


def crash_round(models: Path, logs: Path, token_file: Path, *, model: str, dim: int, round_number: int,
                writers: int = 16, write_s: float = 1.0) -> RoundCounts:
    """One kill -9 round (see the module); the server is stopped when it returns."""
    from knnserve_client import Client, KnnServeClientError, RetryPolicy

    token = token_file.read_text().strip()
    process, target = start_knnserve(*serve_args(models, logs, token_file))
    states = [_Writer() for _ in range(writers)]
    stop_at = time.monotonic() + write_s

    def write(number: int) -> None:
        state = states[number]
        with Client(target, token=token, timeout=10, retry=RetryPolicy(max_attempts=1)) as client:
            call = 0
            while time.monotonic() < stop_at + 30:  # until the kill makes a call fail
                request_id, row = f"r{round_number}-w{number}-{call}", unique_row(round_number, number, call, dim)
                label = f"w{number % 4}"
                state.pending = (request_id, row, label)
                try:
                    result = client.add_examples(model, row, [label], request_id=request_id)
                except KnnServeClientError:
                    return
                state.acked[request_id] = (int(result.ids[0]), row)
                state.pending = None
                call += 1

    threads = [threading.Thread(target=write, args=(number,)) for number in range(writers)]
    for thread in threads:
        thread.start()
    time.sleep(write_s)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    for thread in threads:
        thread.join()

    counts = RoundCounts()
    started = time.perf_counter()
    process, target = start_knnserve(*serve_args(models, logs, token_file))
    counts.replay_s = time.perf_counter() - started
    try:
        with Client(target, token=token, timeout=30) as client:
            for state in states:
                if state.pending is None:
                    continue
                counts.in_flight += 1
                request_id, row, label = state.pending
                result = client.add_examples(model, row, [label], request_id=request_id)
                counts.retried_duplicate += int(result.duplicate)
                state.acked[request_id] = (int(result.ids[0]), row)
            acked = [entry for state in states for entry in state.acked.values()]
            counts.acknowledged = len(acked)
            rows = np.concatenate([row for _, row in acked])
            found = client.search(model, rows, k=2)
            expected_ids = np.array([identifier for identifier, _ in acked])
            # Distances of a row to itself are 0 up to float rounding (batched L2 is |x|^2 + |y|^2 - 2xy);
            # |x|^2 is about 40,000 here, so a row is up to about 0.1 from itself; distinct rows are about 5.7 apart.
            hit = (found.ids[:, 0] == expected_ids) & (found.distances[:, 0] < SAME_ROW)
            counts.present = int(hit.sum())
            counts.missing = counts.acknowledged - counts.present
            counts.duplicated = int((found.distances[:, 1] < SAME_ROW).sum())  # a second copy of the same row
    finally:
        stop(process)
    return counts


__all__ = ["RoundCounts", "crash_round", "serve_args", "unique_row"]
