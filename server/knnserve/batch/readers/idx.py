"""IDX inputs (MNIST's format), plain or gzip-compressed, read a slice of rows at a time."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from knnserve.batch.readers.base import FileFacts, ReadOptions, check_row_shape
from knnserve.batch.rows import RowBatch, RowSpec, checked_rows, failed_rows
from knnserve.data.files import GZIP_MAGIC
from knnserve.data.idx import IDX_DTYPES
from knnserve.errors import DatasetError

IDX = "idx"


def is_gzip(path: Path) -> bool:
    """True when the file starts with the gzip magic bytes."""
    with path.open("rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if is_gzip(path) else path.open("rb")


def _header(handle: IO[bytes], source: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Dimensions, dtype and data offset from an IDX header."""
    try:
        head = handle.read(4)
        if len(head) < 4 or head[:2] != b"\x00\x00":
            raise DatasetError(f"{source}: not an IDX file (expected two zero bytes, a type code and the number of dimensions)")
        type_code, ndim = head[2], head[3]
        if type_code not in IDX_DTYPES:
            raise DatasetError(f"{source}: unknown IDX type code 0x{type_code:02X}")
        if ndim == 0:
            raise DatasetError(f"{source}: expected an IDX array with at least 1 dimension, got 0")
        raw = handle.read(4 * ndim)
    except (OSError, EOFError, zlib.error) as error:
        raise DatasetError(f"{source}: cannot read the IDX header ({error})") from error
    if len(raw) < 4 * ndim:
        raise DatasetError(f"{source}: truncated IDX header")
    return tuple(struct.unpack(f">{ndim}I", raw)), IDX_DTYPES[type_code], 4 + 4 * ndim


def describe_idx(path: Path, source: str, options: ReadOptions, spec: RowSpec) -> FileFacts:
    """Rows of an IDX file from its header; a plain file's length is checked too (a gzip one's only when read)."""
    with _open(path) as handle:
        dims, dtype, offset = _header(handle, source)
    if len(dims) == 1:
        raise DatasetError(f"{source}: a 1-D IDX array (labels?); expected images of shape {spec.expected()}")
    expected = offset + math.prod(dims) * dtype.itemsize
    if not is_gzip(path) and path.stat().st_size != expected:
        raise DatasetError(f"{source}: expected {expected} bytes for shape {dims} {dtype.name}, got {path.stat().st_size}")
    check_row_shape(source, dims[1:], spec)
    return FileFacts(rows=dims[0])


class IdxSource:
    """An open IDX file: plain files are memory-mapped, gzip ones read forward (a seek back restarts the stream)."""

    def __init__(self, path: Path, source: str, spec: RowSpec) -> None:
        self.source = source
        self.spec = spec
        self._handle = _open(path)
        dims, self._dtype, self._offset = _header(self._handle, source)
        self._row_shape = dims[1:]
        self._row_bytes = math.prod(self._row_shape) * self._dtype.itemsize
        self._mapped: np.ndarray | None = None
        if not isinstance(self._handle, gzip.GzipFile):
            self._mapped = np.memmap(path, dtype=self._dtype, mode="r", offset=self._offset, shape=dims)

    def read(self, start: int, stop: int) -> RowBatch:
        """Rows [start, stop) in native byte order; rows past the end of a short gzip stream are error rows."""
        native = self._dtype.newbyteorder("=")
        if self._mapped is not None:
            return checked_rows(self.source, start, np.asarray(self._mapped[start:stop]).astype(native), self.spec)
        try:
            self._handle.seek(self._offset + start * self._row_bytes)
            data = self._handle.read((stop - start) * self._row_bytes)
        except (OSError, EOFError, zlib.error) as error:
            return failed_rows(self.source, start, stop - start, f"input: cannot read these rows ({error})", self.spec)
        whole = len(data) // self._row_bytes
        rows = np.frombuffer(data, dtype=self._dtype, count=whole * math.prod(self._row_shape)).reshape(whole, *self._row_shape)
        batch = checked_rows(self.source, start, rows.astype(native), self.spec)
        if whole == stop - start:
            return batch
        missing = failed_rows(self.source, start + whole, stop - start - whole, "input: the file ends before this row", self.spec)
        return RowBatch.join(0, [batch, missing])

    def close(self) -> None:
        """Close the file."""
        self._mapped = None
        self._handle.close()


__all__ = ["IDX", "IdxSource", "describe_idx", "is_gzip"]
