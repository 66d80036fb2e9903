"""The seam of the harness: a system under test, whatever it is (an index in this process, a server
over gRPC, scikit-learn in a child process, a numpy loop), as the runner sees it.

The runner (``evaluate/runner.py``) opens a system, asks for its settings, times ``search`` through
the one measurement loop (``measure.py``) and records what it answered; scoring happens after all
systems ran (``scoring.py``), as in ann-benchmarks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from knnserve.evaluate.runs import BuildCost, params_label
from knnserve_client.wire.query import KnnQuery

# What a search returns: neighbors (distances on the true scale, ids), class predictions of every
# row it was given, or None for a system that only computes (the GEMM bound).
Answer = tuple[np.ndarray, np.ndarray] | np.ndarray | None


@dataclass(frozen=True)
class Setting:
    """One search setting of a system: its search effort (``nprobe`` / ``ef_search``; the rest unset), or a
    peer library's own search knobs (``extra``: ``(("ef", 64),)``, ``(("leaves_to_search", 8), ("reorder", 40))``)."""

    query: KnnQuery = KnnQuery()
    extra: tuple[tuple[str, int | float], ...] = ()

    @property
    def params(self) -> dict[str, int | float]:
        """The search knobs that are set, as a plain dict (what results.json records)."""
        knobs: dict[str, int | float] = {name: value for name, value in self.query.set_fields().items()
                                         if name in ("nprobe", "ef_search")}
        return {**knobs, **dict(self.extra)}

    @property
    def label(self) -> str:
        """``nprobe=16`` / ``efSearch=64`` / empty."""
        return params_label(self.params)


@dataclass(frozen=True)
class Description:
    """How a system shows in the results: who it is, what it searches, and notes for the report."""

    label: str
    system: str
    transport: str
    index: dict[str, Any] | None = None
    exact: bool = False
    build: BuildCost | None = None
    notes: tuple[str, ...] = ()
    space: str = "raw"


@dataclass(frozen=True)
class Modes:
    """Which timing modes a system takes part in.

    ``single_queries`` overrides the config's single-query subsample. A ``subsampled`` system (the
    naive loop) is too slow for every query: it answers and is timed on its single-query rows only,
    and its time for all queries is extrapolated.
    """

    batch: bool = True
    single: bool = True
    single_queries: int | None = None
    subsampled: bool = False


class System(Protocol):
    """A system under test. ``open`` before anything else, ``close`` at the end (the runner does both)."""

    modes: Modes

    def open(self) -> None:
        """Build the index, start the child process, connect: whatever must happen before the first search."""

    def describe(self) -> Description:
        """Who the system is and what it searches (valid after :meth:`open`)."""

    def settings(self) -> list[Setting]:
        """The search settings to run, in order."""

    def prepare(self, queries: np.ndarray) -> np.ndarray:
        """The query rows as :meth:`search` takes them (done once, untimed); row i stays row i."""

    def search(self, rows: np.ndarray, setting: Setting) -> Answer:
        """Answer ``rows`` (a slice of :meth:`prepare`'s output) at ``setting``: this is what is timed."""

    def finish(self, answer: Answer) -> Answer:
        """Untimed conversion of what :meth:`search` returned (e.g. FAISS's squared L2 to Euclidean)."""

    def close(self) -> None:
        """Free what :meth:`open` took."""


@dataclass
class StageClock:
    """Seconds a system spent in one stage of its timed calls (feature extraction), call by call.

    A system that has such a stage records each call's share in it; the runner resets the clock
    before a setting is timed and summarises it after (:meth:`summary`), so the report can show
    the stage apart from the search it is part of.
    """

    calls: list[tuple[int, float]] = field(default_factory=list)

    def reset(self) -> None:
        """Forget the calls so far."""
        self.calls.clear()

    def timed(self, rows: int, started: float) -> None:
        """One call over ``rows`` rows whose stage began at ``started`` (``time.perf_counter``) and ends now."""
        self.calls.append((rows, time.perf_counter() - started))

    def summary(self, n_queries: int) -> dict[str, Any] | None:
        """Median seconds of the calls over every query (batch passes), and percentiles of the 1-row calls."""
        batch = sorted(s for rows, s in self.calls if rows == n_queries)
        single = np.array([s for rows, s in self.calls if rows == 1], dtype=np.float64)
        if not batch and not single.size:
            return None
        out: dict[str, Any] = {"calls": len(self.calls)}
        if batch:
            median = float(np.median(batch))
            out.update(batch_seconds=median, batch_rows_per_s=n_queries / median if median > 0 else None)
        if single.size:
            out.update(single_p50_ms=float(np.percentile(single, 50) * 1e3), single_p99_ms=float(np.percentile(single, 99) * 1e3))
        return out


def is_exact(factory: str, input_dtype: str, preprocessed: bool) -> bool:
    """True when an index searches exhaustively over exact vectors: ``Flat``, or raw bytes of uint8 inputs."""
    if factory == "Flat":
        return True
    return factory == "SQ8_direct" and input_dtype == "uint8" and not preprocessed


__all__ = ["Answer", "Description", "Modes", "Setting", "StageClock", "System", "is_exact"]
