"""The local engine: this process; shards read ahead and written behind on helper threads, searched on every core.

The cores are used by several single-threaded FAISS searches at once (one per worker thread, on
pieces of SEARCH_ROWS rows; FAISS releases the GIL), not by one search spread over an OpenMP team:
as fast here when the machine is idle, and much steadier when other processes take a core.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from knnserve.batch.classify import ModelClassifier, bundle_facts
from knnserve.batch.engines import Commit
from knnserve.batch.plan import Plan, Shard
from knnserve.batch.readers import SourceCache, read_shard
from knnserve.batch.results import ResultBatch
from knnserve.batch.rows import RowBatch
from knnserve.batch.spec import JobSpec, ModelFacts
from knnserve.index import set_num_threads
from knnserve.machine import usable_cores
from knnserve.model import KNNModel

# Shards read ahead, shards whose pieces are being searched, and shards being written: enough to keep every core busy.
READ_AHEAD = 2
SEARCH_AHEAD = 2
WRITE_BEHIND = 2


class LocalEngine:
    """Classify in this process with a bundle through ``KNNModel``: ``threads`` searches at a time (default: one per core)."""

    name = "local"

    def __init__(self, bundle: Path, *, threads: int | None = None) -> None:
        self.bundle = bundle
        self.threads = threads or usable_cores()
        self.classifier: ModelClassifier | None = None
        self.facts: ModelFacts | None = None
        self._kernel_builder: ThreadPoolExecutor | None = None

    def open(self, spec: JobSpec) -> ModelFacts:
        """Load and verify the bundle; resolve the query against it (errors here stop the job before any output).

        The model's search kernel is then built on a helper thread while the job plans its input, opens
        its output and reads the first shard; the first searches wait for it (it is built once, under
        a lock), so every piece is searched by the same kernel whenever the build ends.
        """
        model = KNNModel.load(self.bundle)
        self.classifier = ModelClassifier(model, spec.query, spec.heads, neighbors=spec.neighbors)
        self.facts = bundle_facts(self.bundle, model, self.classifier.query)
        self._kernel_builder = ThreadPoolExecutor(1, thread_name_prefix="batch-kernel")
        # A failed build is not lost: the first search builds again and raises it there.
        self._kernel_builder.submit(model.warm_kernel)
        return self.facts

    def run(self, plan: Plan, shards: Sequence[Shard], commit: Commit) -> None:
        """Read (one thread), search (``threads`` threads, one FAISS thread each), commit (one thread); every shard whole."""
        assert self.classifier is not None and self.facts is not None, "open() first"
        classifier = self.classifier
        cache = SourceCache(self.facts.row_spec)
        pending = iter(shards)
        with ThreadPoolExecutor(1, thread_name_prefix="batch-read") as reader, \
                ThreadPoolExecutor(self.threads, thread_name_prefix="batch-search", initializer=set_num_threads,
                                   initargs=(1,)) as searchers, \
                ThreadPoolExecutor(1, thread_name_prefix="batch-write") as writer:
            reads: deque[Future[RowBatch]] = deque()
            searching: deque[list[Future[ResultBatch]]] = deque()
            writes: deque[Future[None]] = deque()

            def read_next() -> None:
                shard = next(pending, None)
                if shard is not None:
                    reads.append(reader.submit(read_shard, shard, plan.files, cache))

            for _ in range(READ_AHEAD):
                read_next()
            try:
                while reads or searching:
                    while reads and len(searching) < SEARCH_AHEAD:
                        searching.append(classifier.submit(reads.popleft().result(), searchers))
                        read_next()
                    result = ResultBatch.join([piece.result() for piece in searching.popleft()])
                    writes.append(writer.submit(commit, result))
                    while writes and (writes[0].done() or len(writes) > WRITE_BEHIND):
                        writes.popleft().result()  # a failed write stops the job here
                while writes:
                    writes.popleft().result()
            finally:
                for future in [*reads, *(piece for pieces in searching for piece in pieces)]:
                    future.cancel()
                reader.submit(cache.close)

    def close(self) -> None:
        """Drop the model (after its kernel build, if one is still running)."""
        if self._kernel_builder is not None:
            self._kernel_builder.shutdown(wait=True)
            self._kernel_builder = None
        self.classifier = None

    def report(self) -> dict[str, float | int | str]:
        """The number of search threads."""
        return {"search_threads": self.threads}


__all__ = ["LocalEngine"]
