"""Data-plane configuration: dynamic batching (frozen dataclass; the CLI checks ranges before it is built)."""

from __future__ import annotations

from dataclasses import dataclass

from knnserve.errors import InvalidInputError


@dataclass(frozen=True)
class BatchConfig:
    """Dynamic batching: concurrent requests to one model version merged into one FAISS search.

    Attributes
    ----------
    enabled : off = every request is searched on its own thread of the server's pool, side by side.
    max_rows : a batch closes once it holds this many rows (one request larger than this is
        searched alone).
    max_neighbors : the merged search's budget, rows x the largest k of the batch. A request over
        it on its own runs alone on a lane of its own (one FAISS thread), beside the batches.
    max_wait_us : the longest the first request of a batch may wait for company, in microseconds.
    adaptive : wait only while there is concurrent load (the previous batch merged several
        requests), and at most ``wait_fraction`` of the last search's duration: waiting then
        never costs more than that share of a search, and merging saves whole searches (an
        exact search of 16 rows costs little more than one of 4). A lone client pays no wait.
    wait_fraction : see ``adaptive``.
    unbatched_below_us : adaptive mode only: a request whose search is expected to take less than
        this (the model's measured CPU cost per row times its rows) is searched at once on the
        event loop's thread instead of being handed to the model's search lane. The hand-off
        costs a thread switch each way, more than a search of a few tens of microseconds (a small
        HNSW index) could ever save by being merged. 0 turns it off.
    """

    enabled: bool = True
    max_rows: int = 256
    max_neighbors: int = 256 * 100
    max_wait_us: int = 10_000
    adaptive: bool = True
    wait_fraction: float = 0.25
    unbatched_below_us: int = 200

    def __post_init__(self) -> None:
        if self.max_rows < 1:
            raise InvalidInputError("max_rows", "an integer >= 1", self.max_rows)
        if self.max_neighbors < 1:
            raise InvalidInputError("max_neighbors", "an integer >= 1", self.max_neighbors)
        if self.max_wait_us < 0:
            raise InvalidInputError("max_wait_us", "an integer >= 0", self.max_wait_us)
        if self.unbatched_below_us < 0:
            raise InvalidInputError("unbatched_below_us", "an integer >= 0", self.unbatched_below_us)
        if not 0 <= self.wait_fraction <= 10:
            raise InvalidInputError("wait_fraction", "a number between 0 and 10", self.wait_fraction)


__all__ = ["BatchConfig"]
