"""Rows in flight through a batch job: what a reader hands on (rows, their ids, per-row errors)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from knnserve_client.wire.errors import InvalidInputError


@dataclass(frozen=True)
class RowSpec:
    """What one input row must look like for the model: its shape (or flattened length) and dtype."""

    input_shape: tuple[int, ...]
    input_dtype: str

    @property
    def dim(self) -> int:
        """Values in one flattened row."""
        return math.prod(self.input_shape)

    def accepts(self, row_shape: tuple[int, ...]) -> bool:
        """True when a row of this shape fits the model, as it is or flattened (like ``KNNModel.prepare``)."""
        return tuple(row_shape) in (self.input_shape, (self.dim,))

    def expected(self) -> str:
        """The accepted row shapes in words, for error messages."""
        shapes = [self.input_shape] if len(self.input_shape) == 1 else [self.input_shape, (self.dim,)]
        return " or ".join(str(tuple(s)) for s in shapes)

    def shape_error(self, field: str, row_shape: tuple[int, ...]) -> str:
        """The message for a row of the wrong shape (the wording of the server's ``InvalidInputError``)."""
        return str(InvalidInputError(field, f"rows of shape {self.expected()}", str(tuple(row_shape))))


def as_row_dtype(x: np.ndarray) -> np.ndarray:
    """Rows as the model takes them: uint8 kept, every other numeric dtype converted to float32."""
    if x.dtype == np.uint8 or x.dtype == np.float32:
        return x
    with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32 becomes inf: a bad row, reported
        return x.astype(np.float32)


def non_finite_rows(x: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows (n, dim) holding a NaN or an infinity (never any for integer rows)."""
    if x.dtype.kind != "f":
        return np.zeros(x.shape[0], dtype=bool)
    return ~np.isfinite(x).all(axis=1)


@dataclass(eq=False)
class RowBatch:
    """Consecutive rows of one shard: where each came from, its values (n, dim), and an error or "".

    Rows with an error hold zeros in ``x``; classification skips them and the job writes them to the
    errors file. ``start`` is the position of the first row within its shard.
    """

    shard: int
    start: int
    sources: np.ndarray  # (n,) str: the input file each row came from, as the job names it
    indices: np.ndarray  # (n,) int64: the row's index within that file
    x: np.ndarray  # (n, dim) uint8 or float32
    errors: np.ndarray  # (n,) str: "" for a good row, else why it is bad

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def good(self) -> np.ndarray:
        """Boolean mask of the rows without an error."""
        return self.errors == ""

    def slice(self, start: int, stop: int) -> RowBatch:
        """Rows [start, stop) of this batch (positions in the shard move with them)."""
        return RowBatch(self.shard, self.start + start, self.sources[start:stop], self.indices[start:stop],
                        self.x[start:stop], self.errors[start:stop])

    def pieces(self, rows: int) -> list[RowBatch]:
        """This batch cut where the shard's position is a multiple of ``rows``: the same cuts whatever batch it came in."""
        edges = [0, *range(-(-self.start // rows) * rows - self.start, len(self), rows), len(self)]
        edges = sorted(set(e for e in edges if 0 <= e <= len(self)))
        return [self.slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]

    @classmethod
    def join(cls, shard: int, parts: Sequence[RowBatch]) -> RowBatch:
        """Concatenate consecutive parts of one shard (dtype promoted to float32 when the parts differ)."""
        if len(parts) == 1:
            return parts[0]
        dtypes = {p.x.dtype for p in parts}
        dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.float32)
        return cls(
            shard=shard,
            start=parts[0].start,
            sources=np.concatenate([p.sources for p in parts]),
            indices=np.concatenate([p.indices for p in parts]),
            x=np.concatenate([p.x.astype(dtype, copy=False) for p in parts]),
            errors=np.concatenate([p.errors for p in parts]),
        )


def checked_rows(source: str, first_index: int, raw: np.ndarray, spec: RowSpec) -> RowBatch:
    """A RowBatch from rows read as one array (n, *row_shape): flattened, converted, non-finite rows marked.

    The caller has checked the row shape (it is the same for every row of an array file).
    """
    n = raw.shape[0]
    x = np.ascontiguousarray(as_row_dtype(raw).reshape(n, spec.dim))
    errors = np.full(n, "", dtype=object)
    bad = non_finite_rows(x)
    if bad.any():
        errors[bad] = "input: expected finite values, got NaN or infinity"
        x = x.copy()
        x[bad] = 0
    return RowBatch(0, 0, np.full(n, source, dtype=object), np.arange(first_index, first_index + n, dtype=np.int64), x, errors)


def failed_rows(source: str, first_index: int, n: int, reason: str, spec: RowSpec) -> RowBatch:
    """A RowBatch of n rows that could not be read, all carrying ``reason``."""
    dtype = np.uint8 if spec.input_dtype == "uint8" else np.float32
    return RowBatch(
        0, 0, np.full(n, source, dtype=object), np.arange(first_index, first_index + n, dtype=np.int64),
        np.zeros((n, spec.dim), dtype=dtype), np.full(n, reason, dtype=object),
    )


def single_rows(sources: Sequence[str], indices: Sequence[int], rows: Sequence[np.ndarray | str], spec: RowSpec) -> RowBatch:
    """A RowBatch from rows decoded one by one (images): each an array, or a string saying why it failed."""
    n = len(rows)
    decoded = [r for r in rows if not isinstance(r, str)]
    dtype = np.uint8 if all(r.dtype == np.uint8 for r in decoded) else np.float32
    x = np.zeros((n, spec.dim), dtype=dtype)
    errors = np.full(n, "", dtype=object)
    for i, row in enumerate(rows):
        if isinstance(row, str):
            errors[i] = row
        elif not spec.accepts(row.shape):
            errors[i] = spec.shape_error("input", row.shape)
        else:
            values = as_row_dtype(row).reshape(spec.dim)
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                errors[i] = "input: expected finite values, got NaN or infinity"
            else:
                x[i] = values
    return RowBatch(0, 0, np.asarray(list(sources), dtype=object).reshape(n), np.asarray(indices, dtype=np.int64).reshape(n), x, errors)


__all__ = ["RowBatch", "RowSpec", "as_row_dtype", "checked_rows", "failed_rows", "non_finite_rows", "single_rows"]
