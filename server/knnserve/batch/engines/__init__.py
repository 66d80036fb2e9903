"""Engines: one job description, three ways to run it (in this process, through a server, on Ray Data)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from knnserve.batch.plan import Plan, Shard
from knnserve.batch.results import ResultBatch
from knnserve.batch.spec import JobSpec, ModelFacts

Commit = Callable[[ResultBatch], None]


class Engine(Protocol):
    """Something that classifies shards: opened once (model checked, query resolved), then run over the pending shards."""

    name: str

    def open(self, spec: JobSpec) -> ModelFacts:
        """Load or reach the model and check the job's options against it, before any output is written."""
        ...

    def run(self, plan: Plan, shards: Sequence[Shard], commit: Commit) -> None:
        """Classify every row of ``shards`` and hand each whole shard to ``commit`` (from one thread at a time)."""
        ...

    def close(self) -> None:
        """Release what :meth:`open` took (threads, channels, a Ray instance it started)."""
        ...

    def report(self) -> dict[str, float | int | str]:
        """Engine facts for the summary (e.g. Ray's start-up time)."""
        ...


__all__ = ["Commit", "Engine"]
