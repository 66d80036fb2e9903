"""The local engine: this process, reading ahead and writing behind on helper threads while FAISS uses the cores."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from knnserve.batch.classify import ModelClassifier, bundle_facts
from knnserve.batch.engines import Commit
from knnserve.batch.plan import Plan, Shard
from knnserve.batch.readers import SourceCache, read_shard
from knnserve.batch.rows import RowBatch
from knnserve.batch.spec import JobSpec, ModelFacts
from knnserve.index import set_num_threads
from knnserve.model import KNNModel

# Shards read ahead of the one being classified, and written behind it: enough to keep FAISS busy.
READ_AHEAD = 2
WRITE_BEHIND = 2


class LocalEngine:
    """Classify in this process with a bundle: one shard at a time through ``KNNModel`` (search on every core)."""

    name = "local"

    def __init__(self, bundle: Path, *, threads: int | None = None) -> None:
        self.bundle = bundle
        self.threads = threads
        self.classifier: ModelClassifier | None = None
        self.facts: ModelFacts | None = None

    def open(self, spec: JobSpec) -> ModelFacts:
        """Load and verify the bundle; resolve the query against it (errors here stop the job before any output)."""
        set_num_threads(self.threads)
        model = KNNModel.load(self.bundle)
        self.classifier = ModelClassifier(model, spec.query, spec.heads, neighbors=spec.neighbors)
        self.facts = bundle_facts(self.bundle, model, self.classifier.query)
        return self.facts

    def run(self, plan: Plan, shards: Sequence[Shard], commit: Commit) -> None:
        """Read (one thread), classify (this thread; FAISS threads), commit (one thread), in shard order."""
        assert self.classifier is not None and self.facts is not None, "open() first"
        cache = SourceCache(self.facts.row_spec)
        pending = iter(shards)
        with ThreadPoolExecutor(1, thread_name_prefix="batch-read") as reader, \
                ThreadPoolExecutor(1, thread_name_prefix="batch-write") as writer:
            reads: deque[Future[RowBatch]] = deque()
            writes: deque[Future[None]] = deque()

            def read_next() -> None:
                shard = next(pending, None)
                if shard is not None:
                    reads.append(reader.submit(read_shard, shard, plan.files, cache))

            for _ in range(READ_AHEAD):
                read_next()
            try:
                while reads:
                    rows = reads.popleft().result()
                    read_next()
                    writes.append(writer.submit(commit, self.classifier.classify(rows)))
                    while writes and (writes[0].done() or len(writes) > WRITE_BEHIND):
                        writes.popleft().result()  # a failed write stops the job here
                while writes:
                    writes.popleft().result()
            finally:
                for future in reads:
                    future.cancel()
                reader.submit(cache.close)

    def close(self) -> None:
        """Drop the model."""
        self.classifier = None

    def report(self) -> dict[str, float | int | str]:
        """Nothing beyond the common summary."""
        return {}


__all__ = ["LocalEngine"]
