"""The schema of ``results.json`` (pydantic models; ``Results.model_json_schema()`` prints it as JSON Schema).

Units: seconds, milliseconds (``*_ms``), bytes; recall and accuracy are fractions in [0, 1];
``accuracy_delta`` is the run's accuracy minus the exact k-NN accuracy (a fraction; x100 for points);
``speedup`` is a QPS divided by the reference's QPS in the same mode (see ``references``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BuildRecord(_Record):
    """Index construction time (train: k-means / PQ codebooks; add: encoding and graph insertion)."""

    train_seconds: float
    add_seconds: float
    total_seconds: float


class MemoryRecord(_Record):
    """Serialized index size (``faiss.serialize_index``), per vector, and the float32 vectors' size divided by it."""

    bytes: int
    bytes_per_vector: float
    smaller_than_float32: float = Field(description="N*d*4 / bytes: how many times smaller than float32 vectors")


class BatchRecord(_Record):
    """All queries in one call, all FAISS threads: pass times, their median, and QPS of the median pass."""

    queries: int
    passes: int
    seconds: list[float]
    median_seconds: float
    qps: float
    cores_used: float | None = Field(
        default=None, description="median CPU seconds per wall second of the passes (in-process runs only)")
    speedup: float | None = None


class SingleRecord(_Record):
    """One query per call on one FAISS thread: latency percentiles over every call, QPS of the median pass."""

    queries: int
    passes: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    qps: float
    speedup: float | None = None


class ExtractionRecord(_Record):
    """The feature extractor's part of a bundle's timed searches (it runs inside them, as in the server)."""

    calls: int
    batch_seconds: float | None = Field(default=None, description="median seconds of extraction in a batch pass")
    batch_rows_per_s: float | None = None
    batch_share: float | None = Field(default=None, description="batch_seconds / the pass's median seconds")
    single_p50_ms: float | None = None
    single_p99_ms: float | None = None


class RunRecord(_Record):
    """One system × index × search setting."""

    run_id: str
    label: str
    system: Literal["knnserve", "faiss", "sklearn", "naive", "matmul", "hnswlib", "usearch", "scann", "pynndescent",
                    "annoy", "voyager"]
    transport: Literal["in-process", "grpc", "child-process"]
    index: dict[str, Any] | None = None
    params: dict[str, int | float] = Field(default_factory=dict)
    exact: bool = False
    build: BuildRecord | None = None
    memory: MemoryRecord | None = None
    recall: float | None = Field(default=None, description="recall@k, ann-benchmarks distance rule (ties count)")
    recall_ids: float | None = Field(default=None, description="|returned ids ∩ exact ids| / k, no tie credit")
    accuracy: float | None = None
    accuracy_delta: float | None = None
    accuracy_queries: int | None = None
    batch: BatchRecord | None = None
    single: SingleRecord | None = None
    extrapolated_seconds: float | None = Field(default=None, description="subsampled baselines: time for all queries")
    pareto: dict[str, bool] = Field(default_factory=dict, description="on the recall-vs-QPS Pareto front, per mode")
    notes: list[str] = Field(default_factory=list)
    space: str = Field(default="raw", description="feature space searched and scored in (see Results.spaces)")
    extraction: ExtractionRecord | None = Field(
        default=None, description="bundles with a feature extractor: its share of the timed calls")


class Reference(_Record):
    """The exact run speedups are measured against in one mode: the fastest exact in-process search."""

    run_id: str
    label: str
    qps: float


class TuningRecord(_Record):
    """Smallest ``parameter`` value reaching ``target_recall`` on held-out training rows (binary search)."""

    index: dict[str, Any]
    parameter: Literal["nprobe", "ef_search"]
    target_recall: float
    value: int | None
    recall: float | None
    reached: bool
    held_out_queries: int
    index_rows: int
    build_seconds: float
    evaluations: list[dict[str, float]]
    # Set only in results.json files written before `knnserve tune` existed (evaluate --write-default);
    # kept so those files still validate.
    written_to: str | None = None
    note: str = ""


class Results(_Record):
    """Everything one ``knnserve evaluate`` run measured (``machine.load_average`` before and after: 1/5/15 min)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    created_at: datetime
    knnserve_version: str
    command: list[str]
    machine: dict[str, Any]
    dataset: dict[str, Any]
    settings: dict[str, Any]
    ground_truth: dict[str, Any]
    exact_accuracy: float
    spaces: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per feature space: description, dim, metric, exact accuracy, ground truth")
    references: dict[str, Reference | None]
    runs: list[RunRecord]
    tuning: list[TuningRecord] = Field(default_factory=list)
