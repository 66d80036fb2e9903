"""The Open Inference Protocol's tensors, parameters and versions as plain values, for every binding.

No protobuf and no HTTP here: the gRPC codec (``codec.py``) and the server's REST binding both turn their
own encoding into these calls, so a wrong datatype, shape, byte length, value or parameter gets the same
check and the same message whichever binding brought it. Datatypes are the protocol's uppercase strings;
raw tensor bytes are little-endian and row-major.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from knnserve_client.wire.errors import InvalidInputError
from knnserve_client.wire.query import NAMED_OPTIONS, KnnQuery, query_fields

DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
INPUT_DATATYPES = ("UINT8", "FP32")
# Request parameters read as the k-NN query, and those the protocol's clients send that knnserve
# has no use for (tritonclient's request priority and timeout): accepted and ignored.
# Every KnnQuery option but top_n (the protocol's outputs carry every class's score).
QUERY_PARAMETERS = tuple(name for name in query_fields() if name != "top_n")
IGNORED_PARAMETERS = ("priority", "timeout")
_MAX_SHAPE_BYTES = 2**48


def datatype_of(array: np.ndarray) -> str:
    """The protocol's datatype name of an array's dtype."""
    for name, dtype in DTYPES.items():
        if array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize:
            return name
    raise ValueError(f"no Open Inference Protocol datatype for {array.dtype}")


def input_layout(datatype: object, shape: Any, field: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """(numpy dtype, shape, element count) of an input tensor's declared datatype and shape.

    Raises InvalidInputError naming ``<field>.datatype`` or ``<field>.shape``.
    """
    if datatype not in INPUT_DATATYPES:
        raise InvalidInputError(f"{field}.datatype", " or ".join(INPUT_DATATYPES), repr(datatype))
    try:
        if isinstance(shape, (str, bytes, dict)):
            raise TypeError
        sizes = list(shape)
    except TypeError:
        raise InvalidInputError(f"{field}.shape", "a list of integers", repr(shape)) from None
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in sizes):
        raise InvalidInputError(f"{field}.shape", "a list of integers", repr(sizes))
    dims = tuple(int(s) for s in sizes)
    if any(s < 0 for s in dims):
        raise InvalidInputError(f"{field}.shape", "sizes >= 0", list(dims))
    if math.prod(max(s, 1) for s in dims) * DTYPES[datatype].itemsize > _MAX_SHAPE_BYTES:
        raise InvalidInputError(f"{field}.shape", f"axes whose product is at most {_MAX_SHAPE_BYTES} bytes", list(dims))
    return DTYPES[datatype], dims, math.prod(dims)


def tensor_from_bytes(datatype: object, shape: Any, raw: bytes | memoryview, field: str, raw_field: str) -> np.ndarray:
    """An input tensor from its raw bytes (read-only, no copy); ``raw_field`` names where the bytes came from."""
    dtype, dims, count = input_layout(datatype, shape, field)
    if len(raw) != count * dtype.itemsize:
        raise InvalidInputError(raw_field, f"{count * dtype.itemsize} bytes for {field} (shape {list(dims)} of {datatype})",
                                f"{len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype).reshape(dims)


def tensor_from_values(datatype: object, shape: Any, values: Any, field: str, values_field: str) -> np.ndarray:
    """An input tensor from a list of numbers, flat or nested like ``shape`` (typed contents, JSON ``data``).

    UINT8 takes integers 0..255, FP32 any numbers; a list of booleans or strings, values past int64 and
    ragged nesting are refused, naming ``values_field``.
    """
    dtype, dims, count = input_layout(datatype, shape, field)
    try:
        array = np.asarray(values)
    except (ValueError, TypeError):  # ragged nesting
        raise InvalidInputError(values_field, f"a flat list of {count} numbers or lists nested like shape {list(dims)}",
                                "a ragged list") from None
    if array.size and array.dtype.kind not in "iuf":
        got = {"b": "booleans", "U": "strings", "S": "strings"}.get(array.dtype.kind, "values that are not all numbers (or too large)")
        raise InvalidInputError(values_field, "numbers", got)
    if array.size != count:
        raise InvalidInputError(values_field, f"{count} values (shape {list(dims)})", f"{array.size}")
    if array.ndim > 1 and array.shape != dims:
        raise InvalidInputError(values_field, f"a flat list or lists nested like shape {list(dims)}", f"nesting {list(array.shape)}")
    if datatype == "UINT8" and array.size:
        if array.dtype.kind == "f" and not np.array_equal(array, np.floor(array)):
            raise InvalidInputError(values_field, "integers 0..255 for UINT8", "fractional values")
        low, high = array.min(), array.max()
        if low < 0 or high > 255:
            raise InvalidInputError(values_field, "values 0..255 for UINT8", int(high) if high > 255 else int(low))
    return array.astype(dtype).reshape(dims)


def _describe(value: object) -> str:
    if value is None:
        return "no value"
    return f"{type(value).__name__} {value!r}"


def query_from_values(parameters: Mapping[str, object], field: str = "parameters") -> KnnQuery:
    """The KnnQuery that request parameters (name -> plain value) describe: integers for k / nprobe /
    ef_search, strings for weights / tie_break; ``priority`` and ``timeout`` ignored. An ill-typed or
    unknown parameter is an InvalidInputError naming ``<field>.<name>``."""
    values: dict[str, Any] = {}
    for name, value in parameters.items():
        if name in IGNORED_PARAMETERS:
            continue
        if name not in QUERY_PARAMETERS:
            raise InvalidInputError(f"{field}.{name}", f"one of {', '.join(QUERY_PARAMETERS)} (or {', '.join(IGNORED_PARAMETERS)})",
                                    repr(name))
        if name in NAMED_OPTIONS:
            if not isinstance(value, str):
                raise InvalidInputError(f"{field}.{name}", "a string", _describe(value))
        elif not isinstance(value, int) or isinstance(value, bool):
            raise InvalidInputError(f"{field}.{name}", "an integer", _describe(value))
        values[name] = value
    try:
        return KnnQuery(**values)
    except InvalidInputError as exc:
        raise exc.renamed(f"{field}.{exc.field}") from None


def version_from_text(text: str, field: str) -> int | None:
    """A protocol version string as knnserve's version: "" = the newest, else a positive integer."""
    if not text:
        return None
    if not text.isdigit() or not text.isascii() or int(text) < 1:
        raise InvalidInputError(field, "a positive integer as a string, or empty for the newest", repr(text))
    return int(text)


def output_bytes(array: np.ndarray) -> tuple[str, list[int], bytes]:
    """An output's datatype, shape and raw little-endian, row-major bytes."""
    datatype = datatype_of(array)
    return datatype, list(array.shape), np.ascontiguousarray(array, dtype=DTYPES[datatype]).tobytes()


__all__ = ["DTYPES", "IGNORED_PARAMETERS", "INPUT_DATATYPES", "QUERY_PARAMETERS", "datatype_of", "input_layout",
           "output_bytes", "query_from_values", "tensor_from_bytes", "tensor_from_values", "version_from_text"]
