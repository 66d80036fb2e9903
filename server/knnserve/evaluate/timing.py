"""Timing with warm-up and repeats: batch passes (median seconds, QPS) and per-query latency percentiles.

Every figure comes from ``time.perf_counter``. A *pass* runs the whole query set once; passes
repeat up to ``repeats`` times, but none starts once the passes so far took ``max_seconds`` in
total, so an O(N) exact search on a big dataset is timed fewer times than a 1 ms HNSW setting.
Systems compared head to head (knnserve against bare FAISS on the same index) are timed
interleaved, pass by pass and query by query, so other processes' load falls on both alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from tqdm.auto import tqdm

T = TypeVar("T")
PERCENTILES = (50.0, 95.0, 99.0)


@dataclass(frozen=True)
class BatchTiming:
    """Wall time of passes that each answer ``queries`` queries in one call, and this process's CPU time.

    CPU time (all threads, ``time.process_time``) over wall time shows how many cores a pass really
    had: on a shared machine a pass that got fewer than its threads was slowed by other processes.
    """

    queries: int
    seconds: tuple[float, ...]
    cpu_seconds: tuple[float, ...] = ()

    @property
    def median_seconds(self) -> float:
        """Median pass time."""
        return statistics.median(self.seconds)

    @property
    def qps(self) -> float:
        """Queries per second of the median pass."""
        return self.queries / self.median_seconds

    @property
    def cores_used(self) -> float | None:
        """Median over passes of CPU seconds per wall second (None when CPU time was not measured)."""
        if not self.cpu_seconds:
            return None
        return statistics.median(c / w for c, w in zip(self.cpu_seconds, self.seconds) if w > 0)


@dataclass(frozen=True)
class LatencyTiming:
    """Per-call latencies of passes that each send ``queries`` queries one at a time.

    ``latencies`` pools every call of every pass (seconds); ``pass_seconds`` sums each pass's calls.
    """

    queries: int
    pass_seconds: tuple[float, ...]
    latencies: np.ndarray

    @property
    def qps(self) -> float:
        """Queries per second of the median pass (one query in flight at a time)."""
        return self.queries / statistics.median(self.pass_seconds)

    def percentile_ms(self, q: float) -> float:
        """The ``q``-th percentile of the pooled latencies, in milliseconds."""
        return float(np.percentile(self.latencies, q) * 1e3)

    @property
    def mean_ms(self) -> float:
        """Mean latency in milliseconds."""
        return float(self.latencies.mean() * 1e3)


def time_batch_interleaved(
    calls: Sequence[Callable[[], T]],
    queries: int,
    *,
    repeats: int,
    max_seconds: float,
    warmups: Sequence[Callable[[], object]] = (),
) -> list[tuple[BatchTiming, T]]:
    """Time several systems' passes in turn (A B A B ...), so load from other processes hits them alike.

    Each call answers ``queries`` queries once. After the warm-ups, rounds run until ``repeats``
    rounds are done or the rounds so far took ``max_seconds`` per system on average. Returns each
    system's timing and the result of its first pass.
    """
    for warmup in warmups:
        warmup()
    seconds: list[list[float]] = [[] for _ in calls]
    cpu: list[list[float]] = [[] for _ in calls]
    first: list[list[T]] = [[] for _ in calls]
    while len(seconds[0]) < repeats and (not seconds[0] or sum(map(sum, seconds)) < max_seconds * len(calls)):
        for i, call in enumerate(calls):
            cpu_started, started = time.process_time(), time.perf_counter()
            result = call()
            seconds[i].append(time.perf_counter() - started)
            cpu[i].append(time.process_time() - cpu_started)
            if not first[i]:
                first[i].append(result)
            del result  # let the next pass's output replace it, not sit beside it
    return [
        (BatchTiming(queries=queries, seconds=tuple(s), cpu_seconds=tuple(c)), f[0])
        for s, c, f in zip(seconds, cpu, first)
    ]


def time_single_interleaved(
    calls: Sequence[Callable[[int], object]],
    rows: Sequence[int] | np.ndarray,
    *,
    repeats: int,
    max_seconds: float,
    warmup_rows: int = 10,
    progress: bool = False,
    desc: str = "single-query",
) -> list[LatencyTiming]:
    """Time several systems one row at a time, alternating system per row, in passes over ``rows``.

    The first ``warmup_rows`` rows are sent untimed to every system. Passes repeat until
    ``repeats`` are done or they took ``max_seconds`` per system on average.
    """
    rows = np.asarray(rows)
    if rows.size == 0:
        raise ValueError("rows: expected at least one query row")
    for row in rows[:warmup_rows]:
        for call in calls:
            call(int(row))
    passes: list[list[np.ndarray]] = [[] for _ in calls]
    spent = 0.0
    with tqdm(total=repeats * rows.size * len(calls), desc=desc, unit="query", disable=not progress, leave=False) as bar:
        while len(passes[0]) < repeats and (not passes[0] or spent < max_seconds * len(calls)):
            latencies = np.empty((len(calls), rows.size), dtype=np.float64)
            for position, row in enumerate(rows.tolist()):
                for i, call in enumerate(calls):
                    started = time.perf_counter()
                    call(row)
                    latencies[i, position] = time.perf_counter() - started
            for i in range(len(calls)):
                passes[i].append(latencies[i])
            spent += float(latencies.sum())
            bar.update(rows.size * len(calls))
    return [
        LatencyTiming(queries=int(rows.size), pass_seconds=tuple(float(p.sum()) for p in own),
                      latencies=np.concatenate(own))
        for own in passes
    ]


def time_single(
    call_one: Callable[[int], object],
    rows: Sequence[int] | np.ndarray,
    *,
    repeats: int,
    max_seconds: float,
    warmup_rows: int = 10,
    progress: bool = False,
    desc: str = "single-query",
) -> LatencyTiming:
    """Time ``call_one(row)`` one row at a time over ``rows``, in passes; the first ``warmup_rows`` calls are untimed."""
    return time_single_interleaved([call_one], rows, repeats=repeats, max_seconds=max_seconds,
                                   warmup_rows=warmup_rows, progress=progress, desc=desc)[0]


def latency_summary(timing: LatencyTiming) -> dict[str, float]:
    """p50/p95/p99/mean latency (ms) and QPS of a single-query timing."""
    summary = {f"p{int(q)}_ms": timing.percentile_ms(q) for q in PERCENTILES}
    summary["mean_ms"] = timing.mean_ms
    summary["qps"] = timing.qps
    return summary
