"""Run search functions the way every system is measured: batch passes on all threads, then one query a call on one thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from knnserve.evaluate.timing import BatchTiming, LatencyTiming, time_batch_interleaved, time_single_interleaved

# Rows searched once, untimed, before batch passes (page faults, thread start-up, lazy allocations);
# more than FAISS's BLAS threshold (20 rows), so the warm-up takes the same code path as the pass.
WARMUP_ROWS = 64

SearchFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Measurement:
    """Neighbours of every query (the first batch pass, or an untimed pass) and the timings that ran."""

    ids: np.ndarray
    distances: np.ndarray
    batch: BatchTiming | None
    single: LatencyTiming | None


@contextmanager
def faiss_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` FAISS OpenMP threads (None: leave as is), then restore the previous count."""
    previous = faiss.omp_get_max_threads()
    if n is not None:
        faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def measure_searches(
    searches: Sequence[SearchFn],
    queries: np.ndarray,
    *,
    modes: tuple[str, ...],
    single_rows: np.ndarray,
    repeats: int,
    max_seconds: float,
    threads: int | None = None,
    progress: bool = False,
    desc: str = "",
) -> list[Measurement]:
    """Time each ``search(rows) -> (distances, ids)`` over ``queries`` in the requested modes, interleaved.

    Batch mode: one call with every query, ``threads`` FAISS threads, one warm-up call on
    ``WARMUP_ROWS`` rows each, then up to ``repeats`` passes. Single mode: one query per call on one
    FAISS thread over ``single_rows`` (as ann-benchmarks does). With several searches, passes (batch)
    and queries (single) alternate between them. The neighbours returned come from the first batch
    pass, or from an untimed full pass when only single mode runs.
    """
    results: list[tuple[np.ndarray, np.ndarray]] = []
    batch: list[BatchTiming | None] = [None] * len(searches)
    with faiss_threads(threads):
        if "batch" in modes:
            timed = time_batch_interleaved(
                [lambda s=s: s(queries) for s in searches],
                queries.shape[0],
                repeats=repeats,
                max_seconds=max_seconds,
                warmups=[lambda s=s: s(queries[:WARMUP_ROWS]) for s in searches],
            )
            batch = [timing for timing, _ in timed]
            results = [result for _, result in timed]
        else:
            results = [s(queries) for s in searches]
    single: list[LatencyTiming | None] = [None] * len(searches)
    if "single" in modes:
        with faiss_threads(1):
            single = list(time_single_interleaved(
                [lambda row, s=s: s(queries[row : row + 1]) for s in searches],
                single_rows,
                repeats=repeats,
                max_seconds=max_seconds,
                progress=progress,
                desc=f"single {desc}".strip(),
            ))
    return [
        Measurement(ids=np.asarray(ids), distances=np.asarray(distances), batch=b, single=t)
        for (distances, ids), b, t in zip(results, batch, single)
    ]


def measure_search(search: SearchFn, queries: np.ndarray, **options: Any) -> Measurement:
    """:func:`measure_searches` for one search function."""
    return measure_searches([search], queries, **options)[0]
