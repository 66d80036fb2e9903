"""Readers, one module per input kind, and the one function that reads a shard's rows from them."""

from __future__ import annotations

import gzip
import zlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from knnserve.batch.plan import InputFile, Shard
from knnserve.batch.readers.arrays import NPY, NPZ, NpySource, NpzSource, describe_npy, describe_npz
from knnserve.batch.readers.base import FileFacts, ReadOptions, Source
from knnserve.batch.readers.idx import IDX, IdxSource, describe_idx
from knnserve.batch.readers.images import IMAGE, IMAGE_SUFFIXES, describe_image, read_images
from knnserve.batch.readers.parquet import PARQUET, PARQUET_SUFFIXES, ParquetSource, describe_parquet
from knnserve.batch.rows import RowBatch, RowSpec, failed_rows
from knnserve.data.files import GZIP_MAGIC
from knnserve.data.idx import IDX_DTYPES
from knnserve.errors import DatasetError

KINDS = (NPY, NPZ, IDX, PARQUET, IMAGE)
DESCRIBERS: dict[str, Callable[[Path, str, ReadOptions, RowSpec], FileFacts]] = {
    NPY: describe_npy, NPZ: describe_npz, IDX: describe_idx, PARQUET: describe_parquet, IMAGE: describe_image,
}
# Open sources kept per process: a shard usually continues the file the previous one ended in.
OPEN_SOURCES = 4


def _looks_like_idx(path: Path) -> bool:
    """True when the file (gunzipped if need be) starts like an IDX array: 0, 0, a known type code, 1-4 dims."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
        if head[:2] == GZIP_MAGIC:
            with gzip.open(path, "rb") as handle:
                head = handle.read(4)
    except (OSError, EOFError, zlib.error):
        return False
    return len(head) == 4 and head[:2] == b"\x00\x00" and head[2] in IDX_DTYPES and 1 <= head[3] <= 4


def kind_of(path: Path) -> str | None:
    """The input kind of a file, from its suffix (IDX files by their first bytes), or None."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return NPY
    if suffix == ".npz":
        return NPZ
    if suffix in PARQUET_SUFFIXES:
        return PARQUET
    if suffix in IMAGE_SUFFIXES:
        return IMAGE
    if suffix in ("", ".gz", ".idx") or "ubyte" in path.name or "idx" in path.name:
        return IDX if _looks_like_idx(path) else None
    return None


def describe(kind: str, path: Path, source: str, options: ReadOptions, spec: RowSpec) -> FileFacts:
    """Rows (and the array or column read) of one input file, from its header; DatasetError when it cannot be read."""
    try:
        return DESCRIBERS[kind](path, source, options, spec)
    except OSError as error:
        raise DatasetError(f"{source}: cannot read ({error.strerror or error})") from error


def open_source(file: InputFile, spec: RowSpec) -> Source:
    """Open an input file (not images: they are decoded in groups by :func:`read_shard`)."""
    path = Path(file.path)
    if file.kind == NPY:
        return NpySource(path, file.source, spec)
    if file.kind == NPZ:
        return NpzSource(path, file.source, file.member, spec)
    if file.kind == IDX:
        return IdxSource(path, file.source, spec)
    if file.kind == PARQUET:
        return ParquetSource(path, file.source, file.member, spec)
    raise ValueError(f"no source for kind {file.kind!r}")


class SourceCache:
    """The few input files opened last, kept open so that consecutive shards read on without reopening."""

    def __init__(self, spec: RowSpec, size: int = OPEN_SOURCES) -> None:
        self.spec = spec
        self.size = size
        self._open: OrderedDict[tuple[str, str], Source] = OrderedDict()

    def get(self, file: InputFile) -> Source:
        """The open source of ``file``, opening it (and closing the least recently used one) if need be."""
        key = (file.path, file.member)
        if key in self._open:
            self._open.move_to_end(key)
            return self._open[key]
        source = open_source(file, self.spec)
        self._open[key] = source
        while len(self._open) > self.size:
            self._open.popitem(last=False)[1].close()
        return source

    def drop(self, file: InputFile) -> None:
        """Close one file (after a read failed, so the next read reopens it)."""
        source = self._open.pop((file.path, file.member), None)
        if source is not None:
            source.close()

    def close(self) -> None:
        """Close every open file."""
        while self._open:
            self._open.popitem()[1].close()


def read_shard(shard: Shard, files: Sequence[InputFile], cache: SourceCache) -> RowBatch:
    """Every row of a shard, in order; what cannot be read becomes error rows, never an exception."""
    spec = cache.spec
    parts: list[RowBatch] = []
    segments = shard.segments
    i = 0
    while i < len(segments):
        file = files[segments[i].file]
        if file.kind == IMAGE:
            j = i
            while j < len(segments) and files[segments[j].file].kind == IMAGE:
                j += 1
            parts.append(read_images([(files[s.file].source, Path(files[s.file].path)) for s in segments[i:j]], spec))
            i = j
            continue
        segment = segments[i]
        try:
            parts.append(cache.get(file).read(segment.start, segment.stop))
        except (OSError, DatasetError, ValueError) as error:  # the file went away or changed since it was planned
            cache.drop(file)
            parts.append(failed_rows(file.source, segment.start, segment.rows, f"input: cannot read ({error})", spec))
        i += 1
    batch = RowBatch.join(shard.number, parts)
    batch.shard, batch.start = shard.number, 0
    return batch


__all__ = ["KINDS", "ReadOptions", "SourceCache", "describe", "kind_of", "open_source", "read_shard"]
