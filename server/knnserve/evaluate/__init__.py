"""Exact-vs-approximate evaluation: recall@k, accuracy, latency, throughput, memory; baselines, tuning, reports.

Names are imported lazily (PEP 562), so building the CLI parser, which reads ``evaluate.config``,
does not load FAISS or the plotting stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "EvaluateConfig": "config",
    "IndexRequest": "config",
    "Sweep": "config",
    "parse_index_request": "config",
    "parse_sweep": "config",
    "GroundTruth": "groundtruth",
    "ground_truth": "groundtruth",
    "accuracy": "metrics",
    "exact_distances": "metrics",
    "id_overlap": "metrics",
    "pareto_front": "metrics",
    "recall_at_k": "metrics",
    "recall_per_query": "metrics",
    "run_evaluate": "pipeline",
    "read_results": "report",
    "Results": "schema",
    "smallest_reaching": "tune",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"knnserve.evaluate.{_EXPORTS[name]}"), name)
