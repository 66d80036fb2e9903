"""The Open Inference Protocol (KServe v2) gRPC codec: its messages' tensors and parameters <-> numpy and KnnQuery.

The checks themselves are ``tensors.py``'s, which the server's REST binding shares. Numeric inputs
come as raw little-endian, row-major bytes (what tritonclient sends) or as typed contents (never
both); outputs always go as raw bytes, which tritonclient reads (it breaks on typed output contents).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from knnserve_client.wire.errors import InvalidInputError
from knnserve_client.wire.inference import grpc_predict_v2_pb2 as v2
from knnserve_client.wire.inference.tensors import (
    DTYPES as _DTYPES,
    INPUT_DATATYPES,
    QUERY_PARAMETERS,
    datatype_of,
    output_bytes,
    query_from_values,
    tensor_from_bytes,
    tensor_from_values,
    version_from_text,
)
from knnserve_client.wire.query import KnnQuery

# The typed-contents field that carries each datatype
CONTENTS_FIELDS: dict[str, str] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}
# datatype -> (numpy dtype, the typed-contents field that carries it)
DATATYPES: dict[str, tuple[np.dtype, str]] = {name: (_DTYPES[name], CONTENTS_FIELDS[name]) for name in _DTYPES}


def decode_input(tensor: v2.ModelInferRequest.InferInputTensor, raw: bytes | None, field: str) -> np.ndarray:
    """One input tensor as a numpy array, from its raw bytes or its typed contents (``tensors.py`` checks both).

    Raises InvalidInputError naming ``<field>.datatype``, ``.shape``, ``.contents`` or the raw bytes.
    """
    contents_field = CONTENTS_FIELDS.get(tensor.datatype)
    typed = getattr(tensor.contents, contents_field) if contents_field and tensor.HasField("contents") else []
    if raw is not None:
        if len(typed):
            raise InvalidInputError(f"{field}.contents", "empty when raw_input_contents carries the input (one or the other)",
                                    f"{len(typed)} values")
        return tensor_from_bytes(tensor.datatype, tensor.shape, raw, field, "raw_input_contents")
    return tensor_from_values(tensor.datatype, tensor.shape, list(typed), field, f"{field}.contents.{contents_field}")


def encode_output(name: str, array: np.ndarray) -> tuple[v2.ModelInferResponse.InferOutputTensor, bytes]:
    """An output tensor's description and its raw little-endian, row-major bytes."""
    datatype, shape, data = output_bytes(array)
    return v2.ModelInferResponse.InferOutputTensor(name=name, datatype=datatype, shape=shape), data


def parameter_value(parameter: v2.InferParameter) -> Any:
    """An InferParameter's value as plain Python (int, str, bool or float), None when it holds none."""
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def parameter_values(parameters: Any) -> dict[str, Any]:
    """A protobuf map of InferParameter as name -> plain value."""
    return {name: parameter_value(parameters[name]) for name in parameters}


def query_from_parameters(parameters: Any) -> KnnQuery:
    """The KnnQuery a request's parameters describe (``tensors.query_from_values``: integers for k / nprobe /
    ef_search, strings for weights / tie_break). Ill-typed or unknown parameters are INVALID_ARGUMENT naming them."""
    return query_from_values(parameter_values(parameters))


__all__ = ["CONTENTS_FIELDS", "DATATYPES", "INPUT_DATATYPES", "QUERY_PARAMETERS", "datatype_of", "decode_input",
           "encode_output", "parameter_value", "parameter_values", "query_from_parameters", "version_from_text"]
