"""What every reader provides: facts about a file (rows, which array or column) and a forward-reading source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from knnserve.batch.rows import RowBatch, RowSpec
from knnserve.errors import DatasetError


@dataclass(frozen=True)
class ReadOptions:
    """Choices about how inputs are read: the Parquet column or .npz array holding the rows."""

    column: str | None = None


@dataclass(frozen=True)
class FileFacts:
    """What planning needs to know about one input file, read from its header only."""

    rows: int
    member: str = ""  # the .npz array or Parquet column read ("" when the file holds one thing)


class Source(Protocol):
    """An open input file; reading rows in increasing order is cheap, going back may reopen it."""

    def read(self, start: int, stop: int) -> RowBatch:
        """Rows [start, stop) of the file (shard and start of the batch left 0 for the caller to set)."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


def check_row_shape(source: str, row_shape: tuple[int, ...], spec: RowSpec) -> None:
    """Refuse an array file whose rows do not fit the model: every row would be bad, so it is a bad input."""
    if not spec.accepts(row_shape):
        raise DatasetError(
            f"{source}: expected rows of shape {spec.expected()} for this model, got rows of shape {tuple(row_shape)}"
        )


def check_numeric(source: str, kind: str) -> None:
    """Refuse a dtype that is not a number (strings, objects: never unpickled)."""
    if kind not in "biuf":
        raise DatasetError(f"{source}: expected a numeric array, got dtype kind {kind!r}")


__all__ = ["FileFacts", "ReadOptions", "Source", "check_numeric", "check_row_shape"]
