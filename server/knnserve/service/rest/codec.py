"""The REST binding's inference bodies: JSON tensors (and Triton's binary-data extension) <-> numpy and KnnQuery.

A request body is JSON, or, with the header ``Inference-Header-Content-Length: N``, N bytes of JSON
followed by the raw bytes of each input whose ``parameters.binary_data_size`` says how many. A response
carries each output as JSON ``data`` (flat, row-major) or, when the request asks for it (the output's
``parameters.binary_data``, else the request's ``parameters.binary_data_output``), as raw bytes after the
JSON, with ``parameters.binary_data_size`` and the response header. The tensor, parameter and version
checks are ``knnserve_client.wire.inference.tensors``'s, which the gRPC binding uses too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from knnserve.service.inference import check_input_names, check_output_parameters
from knnserve_client.wire.errors import InvalidInputError
from knnserve_client.wire.inference.tensors import datatype_of, output_bytes, query_from_values, tensor_from_bytes, tensor_from_values
from knnserve_client.wire.query import KnnQuery

HEADER_LENGTH = "Inference-Header-Content-Length"
REQUEST_KEYS = ("id", "parameters", "inputs", "outputs")
INPUT_KEYS = ("name", "shape", "datatype", "parameters", "data")
OUTPUT_KEYS = ("name", "parameters")
BINARY_SIZE = "binary_data_size"
BINARY_OUTPUT = "binary_data"
BINARY_OUTPUTS = "binary_data_output"


@dataclass(frozen=True)
class InferBody:
    """A decoded inference request: the rows, the k-NN query, the outputs named and how each is to travel."""

    id: str | None
    images: np.ndarray
    query: KnnQuery
    outputs: tuple[str, ...]
    binary: Mapping[str, bool]  # output name -> binary, where the request says so per output
    binary_default: bool  # the request's binary_data_output

    def binary_output(self, name: str) -> bool:
        """Whether output ``name`` travels as raw bytes."""
        return self.binary.get(name, self.binary_default)


def _kind(value: object) -> str:
    """A JSON value's type, as JSON names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return "an array" if isinstance(value, list) else "an object"


def _object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInputError(field, "a JSON object", _kind(value))
    return value


def _keys(value: dict[str, Any], allowed: Sequence[str], field: str) -> None:
    for key in value:
        if key not in allowed:
            raise InvalidInputError(f"{field}.{key}" if field else key, f"keys among {', '.join(allowed)}", "an unknown key")


def header_length(value: str | None, body_bytes: int) -> int | None:
    """The JSON part's length from ``Inference-Header-Content-Length`` (None: the whole body is JSON)."""
    if value is None:
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > body_bytes:
        raise InvalidInputError(HEADER_LENGTH, f"an integer between 0 and the body's {body_bytes} bytes", repr(value[:40]))
    return int(text)


def _read_json(data: bytes | memoryview) -> Any:
    try:
        return json.loads(bytes(data) if isinstance(data, memoryview) else data)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise InvalidInputError("body", "a JSON object (the inference request)", f"text that is not JSON ({exc})") from None
    except RecursionError:
        raise InvalidInputError("body", "a JSON object (the inference request)", "nesting too deep") from None


def _input(tensor: dict[str, Any], binary: memoryview) -> np.ndarray:
    """The one input's rows, from its JSON ``data`` or from the binary part of the body."""
    field = "inputs[0]"
    parameters = _object(tensor.get("parameters", {}), f"{field}.parameters")
    for key in parameters:
        if key != BINARY_SIZE:
            raise InvalidInputError(f"{field}.parameters.{key}", f"only {BINARY_SIZE} (no shared memory here)", "an unknown key")
    if BINARY_SIZE not in parameters:
        if len(binary):
            raise InvalidInputError(HEADER_LENGTH, "the whole body when no input has parameters.binary_data_size",
                                    f"{len(binary)} bytes after the JSON")
        if "data" not in tensor:
            raise InvalidInputError(f"{field}.data", f"the tensor's values (or parameters.{BINARY_SIZE} and {HEADER_LENGTH})",
                                    "neither")
        return tensor_from_values(tensor.get("datatype"), tensor.get("shape"), tensor["data"], field, f"{field}.data")
    size = parameters[BINARY_SIZE]
    if "data" in tensor:
        raise InvalidInputError(f"{field}.data", f"absent when parameters.{BINARY_SIZE} is set (one or the other)", "both")
    if not isinstance(size, int) or isinstance(size, bool) or size != len(binary):
        raise InvalidInputError(f"{field}.parameters.{BINARY_SIZE}",
                                f"the {len(binary)} bytes after the JSON ({HEADER_LENGTH})", _kind(size))
    return tensor_from_bytes(tensor.get("datatype"), tensor.get("shape"), binary, field, f"{field}.parameters.{BINARY_SIZE}")


def parse_infer(body: bytes, json_bytes: int | None) -> InferBody:
    """An inference request body (``json_bytes``: the header's JSON length, None for all JSON).

    Checks in the gRPC binding's order: the inputs (one, named images; datatype, shape, values or
    bytes), the parameters (the k-NN query), the outputs. Raises InvalidInputError naming the field.
    """
    view = memoryview(body)
    split = len(body) if json_bytes is None else json_bytes
    document = _object(_read_json(body if json_bytes is None else view[:split]), "body")
    _keys(document, REQUEST_KEYS, "")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInputError("id", "a string", _kind(request_id))
    inputs = document.get("inputs")
    if not isinstance(inputs, list):
        raise InvalidInputError("inputs", "an array of input tensors", _kind(inputs))
    names = []
    for index, tensor in enumerate(inputs):
        _keys(_object(tensor, f"inputs[{index}]"), INPUT_KEYS, f"inputs[{index}]")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise InvalidInputError(f"inputs[{index}].name", "a string", _kind(name))
        names.append(name)
    check_input_names(names)
    images = _input(inputs[0], view[split:])
    parameters = dict(_object(document.get("parameters", {}), "parameters"))
    binary_default = parameters.pop(BINARY_OUTPUTS, False)
    if not isinstance(binary_default, bool):
        raise InvalidInputError(f"parameters.{BINARY_OUTPUTS}", "true or false", _kind(binary_default))
    query = query_from_values(parameters)
    outputs = document.get("outputs", [])
    if not isinstance(outputs, list):
        raise InvalidInputError("outputs", "an array of requested outputs", _kind(outputs))
    requested: list[str] = []
    binary: dict[str, bool] = {}
    for index, output in enumerate(outputs):
        _keys(_object(output, f"outputs[{index}]"), OUTPUT_KEYS, f"outputs[{index}]")
        name = output.get("name")
        if not isinstance(name, str):
            raise InvalidInputError(f"outputs[{index}].name", "a string", _kind(name))
        options = dict(_object(output.get("parameters", {}), f"outputs[{index}].parameters"))
        if BINARY_OUTPUT in options:
            wanted = options.pop(BINARY_OUTPUT)
            if not isinstance(wanted, bool):
                raise InvalidInputError(f"outputs[{index}].parameters.{BINARY_OUTPUT}", "true or false", _kind(wanted))
            binary[name] = wanted
        check_output_parameters(index, options)
        requested.append(name)
    return InferBody(request_id, images, query, tuple(requested), binary, binary_default)


def render_infer(model: str, version: int, body: InferBody, outputs: Sequence[tuple[str, np.ndarray]]) -> tuple[bytes, int | None]:
    """The response body, and the JSON part's length when raw outputs follow it (else None)."""
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, array in outputs:
        if body.binary_output(name):
            datatype, shape, data = output_bytes(array)
            entries.append({"name": name, "datatype": datatype, "shape": shape, "parameters": {BINARY_SIZE: len(data)}})
            blobs.append(data)
        else:
            entries.append({"name": name, "datatype": datatype_of(array), "shape": list(array.shape),
                            "data": array.ravel().tolist()})
    document: dict[str, Any] = {"model_name": model, "model_version": str(version)}
    if body.id is not None:
        document["id"] = body.id
    document["outputs"] = entries
    text = json.dumps(document, separators=(",", ":")).encode()
    if not blobs:
        return text, None
    return b"".join([text, *blobs]), len(text)


__all__ = ["BINARY_OUTPUT", "BINARY_OUTPUTS", "BINARY_SIZE", "HEADER_LENGTH", "InferBody", "header_length", "parse_infer",
           "render_infer"]
