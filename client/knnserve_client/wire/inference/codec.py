"""The Open Inference Protocol (KServe v2) codec: its tensors and parameters <-> numpy and KnnQuery.

Datatypes are the protocol's uppercase strings. Numeric inputs come as raw little-endian,
row-major bytes (what tritonclient sends) or as typed contents (never both); outputs always go as
raw bytes, which tritonclient reads (it breaks on typed output contents).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from knnserve_client.wire.errors import InvalidInputError
from knnserve_client.wire.inference import grpc_predict_v2_pb2 as v2
from knnserve_client.wire.query import NAMED_OPTIONS, KnnQuery, query_fields

# datatype -> (numpy dtype, the typed-contents field that carries it)
DATATYPES: dict[str, tuple[np.dtype, str]] = {
    "BOOL": (np.dtype("?"), "bool_contents"),
    "UINT8": (np.dtype("<u1"), "uint_contents"),
    "UINT16": (np.dtype("<u2"), "uint_contents"),
    "UINT32": (np.dtype("<u4"), "uint_contents"),
    "UINT64": (np.dtype("<u8"), "uint64_contents"),
    "INT8": (np.dtype("<i1"), "int_contents"),
    "INT16": (np.dtype("<i2"), "int_contents"),
    "INT32": (np.dtype("<i4"), "int_contents"),
    "INT64": (np.dtype("<i8"), "int64_contents"),
    "FP32": (np.dtype("<f4"), "fp32_contents"),
    "FP64": (np.dtype("<f8"), "fp64_contents"),
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
    for name, (dtype, _) in DATATYPES.items():
        if array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize:
            return name
    raise ValueError(f"no Open Inference Protocol datatype for {array.dtype}")


def decode_input(tensor: v2.ModelInferRequest.InferInputTensor, raw: bytes | None, field: str) -> np.ndarray:
    """One input tensor as a numpy array, from its raw bytes or its typed contents.

    Raises InvalidInputError naming ``<field>.datatype``, ``.shape``, ``.contents`` or the raw bytes.
    """
    if tensor.datatype not in INPUT_DATATYPES:
        raise InvalidInputError(f"{field}.datatype", " or ".join(INPUT_DATATYPES), repr(tensor.datatype))
    dtype, contents_field = DATATYPES[tensor.datatype]
    shape = tuple(int(s) for s in tensor.shape)
    if any(s < 0 for s in shape):
        raise InvalidInputError(f"{field}.shape", "sizes >= 0", list(shape))
    if math.prod(max(s, 1) for s in shape) * dtype.itemsize > _MAX_SHAPE_BYTES:
        raise InvalidInputError(f"{field}.shape", f"axes whose product is at most {_MAX_SHAPE_BYTES} bytes", list(shape))
    count = math.prod(shape)
    typed = getattr(tensor.contents, contents_field) if tensor.HasField("contents") else []
    if raw is not None:
        if len(typed):
            raise InvalidInputError(f"{field}.contents", "empty when raw_input_contents carries the input (one or the other)",
                                    f"{len(typed)} values")
        if len(raw) != count * dtype.itemsize:
            raise InvalidInputError("raw_input_contents", f"{count * dtype.itemsize} bytes for {field} "
                                    f"(shape {list(shape)} of {tensor.datatype})", f"{len(raw)} bytes")
        return np.frombuffer(raw, dtype=dtype).reshape(shape)
    if len(typed) != count:
        raise InvalidInputError(f"{field}.contents.{contents_field}", f"{count} values (shape {list(shape)})", f"{len(typed)}")
    values = np.asarray(typed)
    if tensor.datatype == "UINT8" and values.size and values.max() > 255:
        raise InvalidInputError(f"{field}.contents.{contents_field}", "values 0..255 for UINT8", int(values.max()))
    return values.astype(dtype).reshape(shape)


def encode_output(name: str, array: np.ndarray) -> tuple[v2.ModelInferResponse.InferOutputTensor, bytes]:
    """An output tensor's description and its raw little-endian, row-major bytes."""
    datatype = datatype_of(array)
    data = np.ascontiguousarray(array, dtype=DATATYPES[datatype][0]).tobytes()
    return v2.ModelInferResponse.InferOutputTensor(name=name, datatype=datatype, shape=list(array.shape)), data


def _parameter_value(name: str, parameter: v2.InferParameter) -> Any:
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def query_from_parameters(parameters: Any) -> KnnQuery:
    """The KnnQuery a request's parameters describe: integers for k / nprobe / ef_search, strings for
    weights / tie_break. Ill-typed or unknown parameters are INVALID_ARGUMENT naming them."""
    values: dict[str, Any] = {}
    for name in parameters:
        if name in IGNORED_PARAMETERS:
            continue
        if name not in QUERY_PARAMETERS:
            raise InvalidInputError(f"parameters.{name}", f"one of {', '.join(QUERY_PARAMETERS)} (or {', '.join(IGNORED_PARAMETERS)})",
                                    repr(name))
        parameter = parameters[name]
        choice = parameter.WhichOneof("parameter_choice")
        text = name in NAMED_OPTIONS
        if text and choice != "string_param":
            raise InvalidInputError(f"parameters.{name}", "a string_param", choice or "no value")
        if not text and choice not in ("int64_param", "uint64_param"):
            raise InvalidInputError(f"parameters.{name}", "an int64_param or uint64_param", choice or "no value")
        values[name] = _parameter_value(name, parameter)
    try:
        return KnnQuery(**values)
    except InvalidInputError as exc:
        raise exc.renamed(f"parameters.{exc.field}") from None


def version_from_text(text: str, field: str) -> int | None:
    """A protocol version string as knnserve's version: "" = the newest, else a positive integer."""
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise InvalidInputError(field, "a positive integer as a string, or empty for the newest", repr(text))
    return int(text)


__all__ = ["DATATYPES", "INPUT_DATATYPES", "QUERY_PARAMETERS", "datatype_of", "decode_input", "encode_output",
           "query_from_parameters", "version_from_text"]
