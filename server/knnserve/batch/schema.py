"""The output schema (documented in docs/batch.md; bump SCHEMA_VERSION when it changes) and its two encodings.

One output row per good input row, in input order. With one head the prediction columns are
``prediction, class_name, top_classes, top_scores``; with both heads each is prefixed by its head
(``knn_prediction, ..., linear_top_scores``). Parquet holds lists as ``list<...>`` columns; CSV as
``[a,b,c]`` text. Bad rows go to the errors file instead: ``row_id, source, index, reason``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from knnserve.batch.results import ERROR, INDEX, NEIGHBOR_COLUMNS, SOURCE, ResultBatch, head_columns

SCHEMA_VERSION = 1
SCHEMA_KEY = b"knnserve.batch.schema_version"
ERROR_COLUMNS = ("row_id", "source", "index", "reason")


@dataclass(frozen=True)
class OutputMeta:
    """What every output row says besides its own results: the model, its classes, which columns are present."""

    model: str
    model_version: int
    class_names: tuple[str, ...]
    heads: tuple[str, ...]
    neighbors: bool


def _prefix(meta: OutputMeta, head: str) -> str:
    return "" if len(meta.heads) == 1 else f"{head}_"


def output_columns(meta: OutputMeta) -> list[str]:
    """The output's column names, in order."""
    names = ["row_id", "source", "index"]
    for head in meta.heads:
        p = _prefix(meta, head)
        names += [f"{p}prediction", f"{p}class_name", f"{p}top_classes", f"{p}top_scores"]
    if meta.neighbors:
        names += list(NEIGHBOR_COLUMNS)
    return [*names, "model", "model_version"]


def arrow_schema(meta: OutputMeta) -> Any:
    """The Parquet (Arrow) schema of the output."""
    import pyarrow as pa

    fields = [pa.field("row_id", pa.string(), False), pa.field("source", pa.string(), False), pa.field("index", pa.int64(), False)]
    for head in meta.heads:
        p = _prefix(meta, head)
        fields += [
            pa.field(f"{p}prediction", pa.int64(), False),  # -1 when the search found no neighbour
            pa.field(f"{p}class_name", pa.string(), True),  # null with prediction -1
            pa.field(f"{p}top_classes", pa.list_(pa.int32()), False),
            pa.field(f"{p}top_scores", pa.list_(pa.float32()), False),
        ]
    if meta.neighbors:
        fields += [pa.field("neighbor_ids", pa.list_(pa.int64()), False),
                   pa.field("neighbor_distances", pa.list_(pa.float32()), False),
                   pa.field("neighbor_labels", pa.list_(pa.int64()), False)]
    fields += [pa.field("model", pa.string(), False), pa.field("model_version", pa.int64(), False)]
    return pa.schema(fields, metadata={SCHEMA_KEY: str(SCHEMA_VERSION).encode()})


# The columns are built from Arrow buffers over the numpy arrays, never with ``pa.array``: pyarrow's
# ``pa.array`` imports pandas, when installed, to ask whether its argument is a pandas object, and
# that import cost 0.4-0.75 s of the first shard of every job on the shared 2-core machine (pandas is
# not otherwise used here); ``pyarrow.compute`` (0.1 s to import) is not needed either.
_NUMPY_TYPES = {"int32": np.int32, "int64": np.int64, "float": np.float32}  # Arrow's names (float: float32)


def _numbers(values: np.ndarray, value_type: Any) -> Any:
    import pyarrow as pa

    data = np.ascontiguousarray(values, dtype=_NUMPY_TYPES[str(value_type)])
    return pa.Array.from_buffers(value_type, len(data), [None, pa.py_buffer(data)])


def _strings(values: Sequence[str | None]) -> Any:
    """A string array of ``values`` (None: null)."""
    import pyarrow as pa

    nulls = None in values
    encoded = [b"" if value is None else value.encode() for value in values] if nulls else [value.encode() for value in values]  # type: ignore[union-attr]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    if offsets[-1] > np.iinfo(np.int32).max:
        raise ValueError(f"{offsets[-1]} bytes of text in one column of one shard: more than Arrow's string type holds")
    valid = np.fromiter((value is not None for value in values), dtype=bool, count=len(values)) if nulls else None
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.string(), len(encoded), [bitmap, pa.py_buffer(offsets.astype(np.int32)),
                                                             pa.py_buffer(b"".join(encoded))],
                                 null_count=0 if valid is None else int(len(valid) - valid.sum()))


def _lists(values: np.ndarray, value_type: Any) -> Any:
    import pyarrow as pa

    n, width = values.shape
    offsets = _numbers(np.arange(0, (n + 1) * width, width, dtype=np.int32)[: n + 1], pa.int32())
    return pa.ListArray.from_arrays(offsets, _numbers(values.reshape(-1), value_type))


def to_arrow(result: ResultBatch, meta: OutputMeta) -> Any:
    """The good rows of a batch as an Arrow table in the output schema."""
    import pyarrow as pa

    good = result.good
    column = {name: values[good] for name, values in result.columns.items() if name != ERROR}
    n = int(good.sum())
    sources = list(map(str, column[SOURCE].tolist()))
    arrays: list[Any] = [_strings(list(map("{}:{}".format, sources, column[INDEX].tolist()))), _strings(sources),
                         _numbers(column[INDEX], pa.int64())]
    for head in meta.heads:
        prediction, classes, scores = (column[c] for c in head_columns(head))
        arrays += [
            _numbers(prediction, pa.int64()),
            _strings([meta.class_names[p] if p >= 0 else None for p in prediction.tolist()]),
            _lists(classes, pa.int32()),
            _lists(scores, pa.float32()),
        ]
    if meta.neighbors:
        arrays += [_lists(column["neighbor_ids"], pa.int64()), _lists(column["neighbor_distances"], pa.float32()),
                   _lists(column["neighbor_labels"], pa.int64())]
    arrays += [_strings([meta.model] * n), _numbers(np.full(n, meta.model_version, dtype=np.int64), pa.int64())]
    return pa.Table.from_arrays(arrays, schema=arrow_schema(meta))


def _text_lists(values: np.ndarray) -> list[str]:
    # numpy's str() of float32 is the shortest text that reads back to the same float32
    return ["[" + ",".join(row) + "]" for row in values.astype(str).tolist()]


def csv_rows(result: ResultBatch, meta: OutputMeta) -> Iterator[list[object]]:
    """The good rows of a batch as CSV fields, in the order of :func:`output_columns`."""
    good = result.good
    column = {name: values[good] for name, values in result.columns.items() if name != ERROR}
    per_row: list[list[Any]] = [
        [f"{s}:{i}" for s, i in zip(column[SOURCE].tolist(), column[INDEX].tolist())],
        column[SOURCE].tolist(),
        column[INDEX].tolist(),
    ]
    for head in meta.heads:
        prediction, classes, scores = (column[c] for c in head_columns(head))
        per_row += [prediction.tolist(), [meta.class_names[p] if p >= 0 else "" for p in prediction.tolist()],
                    _text_lists(classes), _text_lists(scores)]
    if meta.neighbors:
        per_row += [_text_lists(column[name]) for name in NEIGHBOR_COLUMNS]
    n = int(good.sum())
    per_row += [[meta.model] * n, [meta.model_version] * n]
    return (list(fields) for fields in zip(*per_row))


def error_rows(result: ResultBatch) -> list[list[object]]:
    """The bad rows of a batch as errors-file fields: row id, source, index, reason."""
    bad = ~result.good
    sources = result.columns[SOURCE][bad].tolist()
    indices = result.columns[INDEX][bad].tolist()
    reasons = result.columns[ERROR][bad].tolist()
    return [[f"{s}:{i}", s, i, r] for s, i, r in zip(sources, indices, reasons)]


__all__ = ["ERROR_COLUMNS", "SCHEMA_VERSION", "OutputMeta", "arrow_schema", "csv_rows", "error_rows", "output_columns", "to_arrow"]
