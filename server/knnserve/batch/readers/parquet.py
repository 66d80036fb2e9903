"""Parquet inputs: a column of encoded images (binary, or a struct with a ``bytes`` field) or of numeric lists.

Rows are read a record batch at a time from the row group that holds the first one asked for, so a
file is never loaded whole; reading forward continues where the last read stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from knnserve.batch.readers.base import FileFacts, ReadOptions
from knnserve.batch.readers.images import DECODE_THREADS, decode
from knnserve.batch.rows import RowBatch, RowSpec, as_row_dtype, failed_rows, non_finite_rows, single_rows
from knnserve.errors import DatasetError

PARQUET = "parquet"
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
READ_BATCH_ROWS = 1024


def pyarrow() -> Any:
    """The pyarrow module (with pyarrow.parquet loaded), or a clear error naming the extra that installs it."""
    try:
        import pyarrow as pa
        import pyarrow.parquet  # noqa: F401 - loads pa.parquet
    except ImportError:
        raise DatasetError("Parquet needs pyarrow: pip install 'knnserve[batch]'") from None
    return pa


def _leaf_type(data_type: Any) -> Any:
    pa = pyarrow()
    while pa.types.is_list(data_type) or pa.types.is_large_list(data_type) or pa.types.is_fixed_size_list(data_type):
        data_type = data_type.value_type
    return data_type


def column_mode(data_type: Any) -> str | None:
    """How a column holds rows: "bytes" (encoded images), "array" (numeric lists, nested or not), or None."""
    pa = pyarrow()
    if pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type):
        return "bytes"
    if pa.types.is_struct(data_type):
        index = data_type.get_field_index("bytes")
        if index >= 0 and column_mode(data_type.field(index).type) == "bytes":
            return "bytes"
        return None
    if data_type != _leaf_type(data_type):
        leaf = _leaf_type(data_type)
        return "array" if pa.types.is_integer(leaf) or pa.types.is_floating(leaf) else None
    return None


def _choose_column(schema: Any, source: str, options: ReadOptions) -> tuple[str, str]:
    usable = {field.name: column_mode(field.type) for field in schema}
    if options.column is not None:
        if options.column not in usable:
            raise DatasetError(f"{source}: no column {options.column!r} (--column); it has {', '.join(usable)}")
        if usable[options.column] is None:
            kind = schema.field(options.column).type
            raise DatasetError(
                f"{source}: column {options.column!r} is {kind}; expected encoded images (binary, or a struct "
                "with a bytes field) or numeric lists"
            )
        return options.column, usable[options.column]  # type: ignore[return-value]
    found = [name for name, mode in usable.items() if mode is not None]
    if len(found) != 1:
        listing = ", ".join(f"{field.name} ({field.type})" for field in schema)
        what = "no column of encoded images or numeric lists" if not found else f"{len(found)} usable columns"
        raise DatasetError(f"{source}: {what}; choose one with --column (columns: {listing})")
    return found[0], usable[found[0]]  # type: ignore[return-value]


def describe_parquet(path: Path, source: str, options: ReadOptions, spec: RowSpec) -> FileFacts:
    """Rows of a Parquet file from its footer, and the column they come from."""
    pa = pyarrow()
    try:
        parquet = pa.parquet.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise DatasetError(f"{source}: not a readable Parquet file ({error})") from error
    with parquet:
        column, mode = _choose_column(parquet.schema_arrow, source, options)
        data_type = parquet.schema_arrow.field(column).type
        if mode == "array" and pa.types.is_fixed_size_list(data_type) and _leaf_type(data_type.value_type) == data_type.value_type:
            if data_type.list_size != spec.dim:
                raise DatasetError(f"{source}: column {column!r} holds rows of {data_type.list_size} values; expected {spec.dim}")
        return FileFacts(rows=parquet.metadata.num_rows, member=column)


def _list_rows(column: Any, spec: RowSpec) -> tuple[np.ndarray, np.ndarray]:
    """Rows (n, dim) and per-row errors from a numeric list column, however deeply nested."""
    pa = pyarrow()
    n = len(column)
    bounds = np.arange(n + 1, dtype=np.int64)  # row i spans [bounds[i], bounds[i+1]) of the current level
    level = column
    while pa.types.is_list(level.type) or pa.types.is_large_list(level.type) or pa.types.is_fixed_size_list(level.type):
        if pa.types.is_fixed_size_list(level.type):
            offsets = (np.arange(len(level) + 1, dtype=np.int64) + level.offset) * level.type.list_size
        else:
            offsets = level.offsets.to_numpy().astype(np.int64)
        bounds = offsets[bounds]
        level = level.values
    leaves = level.to_numpy(zero_copy_only=False)  # integer leaves with nulls come back as float with NaN
    lengths = np.diff(bounds)
    errors = np.full(n, "", dtype=object)
    null = ~column.is_valid().to_numpy(zero_copy_only=False)
    errors[null] = "input: null value"
    wrong = ~null & (lengths != spec.dim)
    for i in np.flatnonzero(wrong):
        errors[i] = f"input: expected rows of {spec.dim} values, got {lengths[i]}"
    ok = np.flatnonzero(errors == "")
    x = np.zeros((n, spec.dim), dtype=np.uint8 if leaves.dtype == np.uint8 else np.float32)
    if ok.size:
        x[ok] = as_row_dtype(leaves[bounds[ok][:, None] + np.arange(spec.dim)])
    bad = non_finite_rows(x)
    errors[bad] = "input: expected finite values, got NaN or infinity"
    x[bad] = 0
    return x, errors


class ParquetSource:
    """An open Parquet file, read forward one record batch at a time from the row group holding ``start``."""

    def __init__(self, path: Path, source: str, column: str, spec: RowSpec) -> None:
        pa = pyarrow()
        self.source = source
        self.spec = spec
        self._parquet = pa.parquet.ParquetFile(path)
        self._column = column
        self._mode = column_mode(self._parquet.schema_arrow.field(column).type)
        self._group_starts = np.cumsum([0] + [self._parquet.metadata.row_group(g).num_rows for g in range(self._parquet.num_row_groups)])
        self._batches: Iterator[Any] | None = None
        self._buffer: Any = None  # the part of the last record batch not consumed yet
        self._position = 0  # row of the file at the start of the buffer

    def _restart(self, start: int) -> None:
        group = int(np.searchsorted(self._group_starts, start, side="right") - 1)
        groups = list(range(group, self._parquet.num_row_groups))
        self._batches = self._parquet.iter_batches(batch_size=READ_BATCH_ROWS, row_groups=groups, columns=[self._column])
        self._buffer = None
        self._position = int(self._group_starts[group])

    def _take(self, start: int, stop: int) -> Any:
        pa = pyarrow()
        if self._batches is None or start < self._position:
            self._restart(start)
        assert self._batches is not None
        pieces = []
        while self._position < stop:
            if self._buffer is None or len(self._buffer) == 0:
                batch = next(self._batches, None)
                if batch is None:
                    break
                self._buffer = batch.column(0)
            skip = max(0, start - self._position)
            if skip >= len(self._buffer):
                self._position += len(self._buffer)
                self._buffer = None
                continue
            take = min(len(self._buffer), stop - self._position)
            pieces.append(self._buffer.slice(skip, take - skip))
            self._buffer = self._buffer.slice(take)
            self._position += take
        return pa.concat_arrays(pieces) if pieces else None

    def read(self, start: int, stop: int) -> RowBatch:
        """Rows [start, stop): images decoded, lists checked; an unreadable stretch becomes error rows."""
        pa = pyarrow()
        try:
            column = self._take(start, stop)
        except (OSError, pa.ArrowException) as error:
            self._batches = None
            return failed_rows(self.source, start, stop - start, f"input: cannot read these rows ({error})", self.spec)
        got = 0 if column is None else len(column)
        if self._mode == "bytes":
            if column is not None and pa.types.is_struct(column.type):
                column = column.field("bytes")
            values = [] if column is None else column.to_pylist()
            with ThreadPoolExecutor(max_workers=DECODE_THREADS) as pool:
                rows = list(pool.map(lambda v: "input: null value" if v is None else decode(v, self.spec), values))
            batch = single_rows([self.source] * got, range(start, start + got), rows, self.spec)
        else:
            x, errors = _list_rows(column, self.spec) if column is not None else (np.zeros((0, self.spec.dim), np.float32), np.zeros(0, object))
            batch = RowBatch(0, 0, np.full(got, self.source, dtype=object), np.arange(start, start + got, dtype=np.int64), x, errors)
        if got == stop - start:
            return batch
        missing = failed_rows(self.source, start + got, stop - start - got, "input: the file ends before this row", self.spec)
        return RowBatch.join(0, [batch, missing])

    def close(self) -> None:
        """Close the file."""
        self._batches = None
        self._parquet.close()


__all__ = ["PARQUET", "PARQUET_SUFFIXES", "ParquetSource", "column_mode", "describe_parquet", "pyarrow"]
