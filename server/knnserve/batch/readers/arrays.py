"""``.npy`` and ``.npz`` inputs, read a slice of rows at a time (memory-mapped or from the zip member)."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from knnserve.batch.readers.base import FileFacts, ReadOptions, check_numeric, check_row_shape
from knnserve.batch.rows import RowBatch, RowSpec, checked_rows, failed_rows
from knnserve.errors import DatasetError

NPY = "npy"
NPZ = "npz"


def _header(handle: IO[bytes], source: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from a .npy header; the handle is left at the first data byte."""
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        else:  # 2.0 and 3.0 differ only in how field names are encoded, which numeric arrays have none of
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    except (ValueError, OSError, EOFError) as error:
        raise DatasetError(f"{source}: not a readable .npy array ({error})") from error
    if dtype.hasobject:
        raise DatasetError(f"{source}: expected a numeric array, got dtype {dtype} (object arrays are never unpickled)")
    check_numeric(source, dtype.kind)
    if len(shape) < 1:
        raise DatasetError(f"{source}: expected an array of rows (n, ...), got a scalar")
    return tuple(int(s) for s in shape), bool(fortran), dtype


def describe_npy(path: Path, source: str, options: ReadOptions, spec: RowSpec) -> FileFacts:
    """Rows of a .npy file, checked against the model and against the file's length."""
    with path.open("rb") as handle:
        shape, _, dtype = _header(handle, source)
        offset = handle.tell()
    expected = offset + math.prod(shape) * dtype.itemsize
    if path.stat().st_size < expected:
        raise DatasetError(f"{source}: truncated; expected {expected} bytes for shape {shape} {dtype}, got {path.stat().st_size}")
    check_row_shape(source, shape[1:], spec)
    return FileFacts(rows=shape[0])


class NpySource:
    """A memory-mapped .npy file: any slice of rows is read straight from the page cache."""

    def __init__(self, path: Path, source: str, spec: RowSpec) -> None:
        self.source = source
        self.spec = spec
        self._array = np.load(path, mmap_mode="r", allow_pickle=False)

    def read(self, start: int, stop: int) -> RowBatch:
        """Rows [start, stop), copied out of the mapping."""
        return checked_rows(self.source, start, np.array(self._array[start:stop]), self.spec)

    def close(self) -> None:
        """Drop the mapping."""
        del self._array


def _npz_member(archive: zipfile.ZipFile, source: str, options: ReadOptions) -> str:
    names = [name[: -len(".npy")] for name in archive.namelist() if name.endswith(".npy")]
    if options.column is not None:
        if options.column not in names:
            raise DatasetError(f"{source}: no array {options.column!r} (--column); it holds {', '.join(names) or 'none'}")
        return options.column
    if len(names) != 1:
        raise DatasetError(f"{source}: holds {len(names)} arrays ({', '.join(names) or 'none'}); choose one with --column")
    return names[0]


def describe_npz(path: Path, source: str, options: ReadOptions, spec: RowSpec) -> FileFacts:
    """Rows of the chosen array of an .npz archive, read from its header inside the zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            member = _npz_member(archive, source, options)
            info = archive.getinfo(f"{member}.npy")
            with archive.open(info) as handle:
                shape, fortran, dtype = _header(handle, f"{source}[{member}]")
                offset = handle.tell()
    except zipfile.BadZipFile as error:
        raise DatasetError(f"{source}: not a readable .npz archive ({error})") from error
    if fortran and len(shape) > 1:
        raise DatasetError(f"{source}[{member}]: Fortran-ordered array; rows cannot be streamed (save it C-ordered)")
    if info.file_size < offset + math.prod(shape) * dtype.itemsize:
        raise DatasetError(f"{source}[{member}]: truncated; shape {shape} {dtype} needs more bytes than the member holds")
    check_row_shape(f"{source}[{member}]", shape[1:], spec)
    return FileFacts(rows=shape[0], member=member)


class NpzSource:
    """One array of an .npz archive, read from the (possibly compressed) zip member: forward seeks are cheap."""

    def __init__(self, path: Path, source: str, member: str, spec: RowSpec) -> None:
        self.source = source
        self.spec = spec
        self._archive = zipfile.ZipFile(path)
        self._handle = self._archive.open(f"{member}.npy")
        shape, _, self._dtype = _header(self._handle, f"{source}[{member}]")
        self._row_shape = shape[1:]
        self._row_bytes = math.prod(self._row_shape) * self._dtype.itemsize
        self._offset = self._handle.tell()

    def read(self, start: int, stop: int) -> RowBatch:
        """Rows [start, stop); a short member gives error rows for what is missing."""
        self._handle.seek(self._offset + start * self._row_bytes)
        data = self._handle.read((stop - start) * self._row_bytes)
        whole = len(data) // self._row_bytes if self._row_bytes else stop - start
        rows = np.frombuffer(data, dtype=self._dtype, count=whole * math.prod(self._row_shape)).reshape(whole, *self._row_shape)
        batch = checked_rows(self.source, start, rows.astype(self._dtype.newbyteorder("=")), self.spec)
        if whole == stop - start:
            return batch
        missing = failed_rows(self.source, start + whole, stop - start - whole, "input: the file ends before this row", self.spec)
        return RowBatch.join(0, [batch, missing])

    def close(self) -> None:
        """Close the member and the archive."""
        self._handle.close()
        self._archive.close()


__all__ = ["NPY", "NPZ", "NpySource", "NpzSource", "describe_npy", "describe_npz"]
