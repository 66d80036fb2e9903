"""Raw outcome of one run (one system × index × search setting): neighbours and timings, before any metric.

As in ann-benchmarks, the run step only stores what the system returned and how long it took;
recall, accuracy and speedups are computed afterwards (``knnserve.evaluate.scoring``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from knnserve.evaluate.timing import BatchTiming, LatencyTiming


@dataclass(frozen=True)
class BuildCost:
    """Seconds spent training and filling an index, and its serialized size in bytes."""

    train_seconds: float
    add_seconds: float
    bytes: int


@dataclass(frozen=True)
class RunOutput:
    """What one run returned and how long it took.

    Attributes
    ----------
    label : short human name, e.g. ``"HNSW32,SQ8_direct efSearch=64"``.
    system : ``knnserve``, ``faiss``, ``sklearn``, ``naive`` or ``matmul``.
    transport : ``in-process``, ``grpc`` or ``child-process``.
    index : spec, factory, storage and kind of the index searched (None for baselines without one).
    params : search parameters that ran, e.g. ``{"nprobe": 16}`` (empty for exhaustive search).
    exact : True for exhaustive search that returns the exact neighbours.
    build : training/adding time and size (None when not built here).
    ids, distances : (n, k) neighbours of every query, distances on the true scale (None for
        baselines that only classify).
    predictions, prediction_rows : class predictions and the query positions they belong to, for
        systems that classify without returning neighbours (scikit-learn, the naive loop).
    batch, single : timings of the modes that ran.
    extrapolated_seconds : for a subsampled baseline, the time its rate implies for all queries.
    notes : facts the report should say next to the figures.
    space : key of the feature space the ids were searched in (``raw``, or ``bundle:NAME``).
    extraction : for bundles with a feature extractor, the seconds its part of the timed calls took
        (``StageClock.summary``: batch median, 1-row percentiles).
    """

    label: str
    system: str
    transport: str
    index: dict[str, Any] | None = None
    params: dict[str, int | float] = field(default_factory=dict)
    exact: bool = False
    build: BuildCost | None = None
    ids: np.ndarray | None = None
    distances: np.ndarray | None = None
    predictions: np.ndarray | None = None
    prediction_rows: np.ndarray | None = None
    batch: BatchTiming | None = None
    single: LatencyTiming | None = None
    extrapolated_seconds: float | None = None
    notes: tuple[str, ...] = ()
    space: str = "raw"
    extraction: dict[str, Any] | None = None


def params_label(params: dict[str, int | float]) -> str:
    """``nprobe=16`` / ``efSearch=64`` / empty, the way FAISS users write them (a peer's knobs by their own names)."""
    names = {"nprobe": "nprobe", "ef_search": "efSearch"}
    return " ".join(f"{names.get(key, key)}={value}" for key, value in sorted(params.items()))
