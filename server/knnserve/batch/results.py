"""Classified rows in flight: row-aligned numpy columns, every row of a stretch of one shard, bad ones marked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from knnserve.batch.rows import RowBatch
from knnserve_client.wire.results import HeadResult, Neighbors

# Internal column names; ``schema.py`` maps them to the documented output columns.
SOURCE, INDEX, ERROR = "source", "index", "error"
NEIGHBOR_COLUMNS = ("neighbor_ids", "neighbor_distances", "neighbor_labels")


def head_columns(head: str) -> tuple[str, str, str]:
    """The internal columns of one head: prediction, top classes, top scores."""
    return f"{head}_prediction", f"{head}_top_classes", f"{head}_top_scores"


@dataclass(eq=False)
class ResultBatch:
    """Results for rows [start, start + len) of shard ``shard``: good rows classified, bad rows carrying their error."""

    shard: int
    start: int
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.columns[INDEX].shape[0])

    @property
    def good(self) -> np.ndarray:
        """Boolean mask of the classified rows."""
        return self.columns[ERROR] == ""

    def to_columns(self) -> dict[str, np.ndarray]:
        """Plain columns with the shard and row positions added (how Ray carries a batch)."""
        n = len(self)
        return {"_shard": np.full(n, self.shard, dtype=np.int64),
                "_position": np.arange(self.start, self.start + n, dtype=np.int64), **self.columns}

    @classmethod
    def from_columns(cls, columns: Mapping[str, np.ndarray]) -> ResultBatch:
        """The batch :meth:`to_columns` made (rows of one shard, consecutive)."""
        plain = {name: np.asarray(values) for name, values in columns.items() if not name.startswith("_")}
        plain[SOURCE] = plain[SOURCE].astype(object)
        plain[ERROR] = plain[ERROR].astype(object)
        return cls(int(columns["_shard"][0]), int(columns["_position"][0]), plain)

    @classmethod
    def join(cls, parts: Sequence[ResultBatch]) -> ResultBatch:
        """Consecutive pieces of one shard, in row order."""
        ordered = sorted(parts, key=lambda p: p.start)
        if len(ordered) == 1:
            return ordered[0]
        names = ordered[0].columns
        return cls(ordered[0].shard, ordered[0].start, {name: np.concatenate([p.columns[name] for p in ordered]) for name in names})


def assemble(rows: RowBatch, heads: Mapping[str, HeadResult], neighbors: Neighbors | None) -> ResultBatch:
    """Row-aligned results from answers for the good rows only (bad rows get -1 / 0 and keep their error)."""
    good = rows.good
    n = len(rows)
    columns: dict[str, np.ndarray] = {SOURCE: rows.sources, INDEX: rows.indices, ERROR: rows.errors}

    def spread(values: np.ndarray, fill: float) -> np.ndarray:
        full = np.full((n, *values.shape[1:]), fill, dtype=values.dtype)
        full[good] = values
        return full

    for head, answer in heads.items():
        prediction, classes, scores = head_columns(head)
        columns[prediction] = spread(np.asarray(answer.predictions, dtype=np.int64), -1)
        columns[classes] = spread(np.asarray(answer.top_classes, dtype=np.int32), -1)
        columns[scores] = spread(np.asarray(answer.top_scores, dtype=np.float32), 0)
    if neighbors is not None:
        columns["neighbor_ids"] = spread(np.asarray(neighbors.ids, dtype=np.int64), -1)
        columns["neighbor_distances"] = spread(np.asarray(neighbors.distances, dtype=np.float32), 0)
        columns["neighbor_labels"] = spread(np.asarray(neighbors.labels, dtype=np.int64), -1)
    return ResultBatch(rows.shard, rows.start, columns)


__all__ = ["ERROR", "INDEX", "NEIGHBOR_COLUMNS", "SOURCE", "ResultBatch", "assemble", "head_columns"]
