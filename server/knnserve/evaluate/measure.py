"""The one measurement loop every system goes through: batch passes on all threads, then one query a call on one thread."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from knnserve.evaluate.timing import BatchTiming, LatencyTiming, time_batch_interleaved, time_single_interleaved
from knnserve.index import num_threads

# Rows searched once, untimed, before batch passes (page faults, thread start-up, lazy allocations);
# more than the BLAS threshold (8 rows by default), so the warm-up takes the same code path as the pass.
WARMUP_ROWS = 64

# One timed call: a slice of the query rows in (each system slices its own prepared rows), whatever
# the system answers out (neighbors, predictions or None).
TimedCall = Callable[[slice], Any]


@dataclass(frozen=True)
class Measurement:
    """What the calls answered for every query (the first batch pass, or an untimed pass) and the timings that ran."""

    answer: Any
    batch: BatchTiming | None
    single: LatencyTiming | None


def measure_calls(
    calls: Sequence[TimedCall],
    n_queries: int,
    *,
    modes: tuple[str, ...],
    single_rows: np.ndarray,
    repeats: int,
    max_seconds: float,
    threads: int | None = None,
    progress: bool = False,
    desc: str = "",
    answer_all: bool = True,
) -> list[Measurement]:
    """Time each ``call(rows)`` over the ``n_queries`` query rows in the requested modes, interleaved.

    Batch mode: one call with every query, ``threads`` FAISS threads, one warm-up call on
    ``WARMUP_ROWS`` rows each, then up to ``repeats`` passes. Single mode: one query per call on one
    FAISS thread over ``single_rows`` (as ann-benchmarks does). With several calls, passes (batch)
    and queries (single) alternate between them. The answers returned come from the first batch
    pass, or from an untimed pass over all queries when only single mode runs (None when
    ``answer_all`` is False: a subsampled single-mode-only run answers only the timed rows).
    """
    answers: list[Any] = [None] * len(calls)
    batch: list[BatchTiming | None] = [None] * len(calls)
    with num_threads(threads):
        if "batch" in modes:
            timed = time_batch_interleaved(
                [lambda c=c: c(slice(0, n_queries)) for c in calls],
                n_queries,
                repeats=repeats,
                max_seconds=max_seconds,
                warmups=[lambda c=c: c(slice(0, WARMUP_ROWS)) for c in calls],
            )
            batch = [timing for timing, _ in timed]
            answers = [answer for _, answer in timed]
        elif answer_all:
            answers = [c(slice(0, n_queries)) for c in calls]
    single: list[LatencyTiming | None] = [None] * len(calls)
    if "single" in modes:
        with num_threads(1):
            single = list(time_single_interleaved(
                [lambda row, c=c: c(slice(row, row + 1)) for c in calls],
                single_rows,
                repeats=repeats,
                max_seconds=max_seconds,
                progress=progress,
                desc=f"single {desc}".strip(),
            ))
    return [Measurement(answer=a, batch=b, single=t) for a, b, t in zip(answers, batch, single)]
