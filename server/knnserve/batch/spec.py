"""The job description every engine runs, and the facts about the model an engine reports back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knnserve.batch.readers.base import ReadOptions
from knnserve.batch.rows import RowSpec
from knnserve_client.wire.query import KnnQuery

DEFAULT_SHARD_ROWS = 10_000


@dataclass(frozen=True)
class JobSpec:
    """What to classify, how, and where the results go; the same for the local, server and Ray engines.

    Attributes
    ----------
    inputs : files, folders or globs (``--input``), read in this order.
    out : the output folder (part files, errors file, job manifest).
    fmt : "parquet" or "csv".
    heads : "knn" and/or "linear".
    query : the k-NN options as given (unset fields: the model's defaults); checked when made.
    neighbors : also write each row's neighbour ids, distances and labels.
    shard_rows : input rows per shard, the unit committed at once (part of the job's identity).
    read : which Parquet column or .npz array holds the rows.
    progress : show a progress bar.
    """

    inputs: tuple[str, ...]
    out: Path
    fmt: str = "parquet"
    heads: tuple[str, ...] = ("knn",)
    query: KnnQuery = field(default_factory=KnnQuery)
    neighbors: bool = False
    shard_rows: int = DEFAULT_SHARD_ROWS
    read: ReadOptions = field(default_factory=ReadOptions)
    progress: bool = True


@dataclass(frozen=True)
class ModelFacts:
    """What the job needs to know about the model, whichever engine runs it.

    ``query`` is the job's query resolved against the model (defaults filled in, bounds checked);
    ``identity`` says which model this is, for the job manifest (a bundle's checksum, or a served
    model's name, version and creation time); ``bundle_bytes`` is the size of its files (0 when served).
    """

    row_spec: RowSpec
    name: str
    version: int
    class_names: tuple[str, ...]
    query: KnnQuery
    identity: dict[str, Any]
    bundle_bytes: int = 0


def job_identity(spec: JobSpec, facts: ModelFacts, input_fingerprint: str, files: int, rows: int) -> dict[str, Any]:
    """What makes two runs the same job: the input, the model, and every option that changes the output."""
    return {
        "input": {"fingerprint": input_fingerprint, "files": files, "rows": rows, "column": spec.read.column},
        "model": facts.identity,
        "options": {
            "heads": list(spec.heads),
            "query": facts.query.set_fields(),
            "neighbors": spec.neighbors,
            "format": spec.fmt,
            "shard_rows": spec.shard_rows,
        },
    }


__all__ = ["DEFAULT_SHARD_ROWS", "JobSpec", "ModelFacts", "job_identity"]
