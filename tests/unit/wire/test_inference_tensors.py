"""The Open Inference Protocol's plain checks (wire/inference/tensors.py) and the REST body codec, without a server."""

from __future__ import annotations

import json

import numpy as np
import pytest

from knnserve.service.rest.codec import header_length, parse_infer, render_infer
from knnserve_client.wire.errors import InvalidInputError
from knnserve_client.wire.inference.tensors import (
    output_bytes,
    query_from_values,
    tensor_from_bytes,
    tensor_from_values,
    version_from_text,
)
from knnserve_client.wire.query import KnnQuery


def test_values_flat_or_nested_become_the_declared_dtype_and_shape() -> None:
    flat = tensor_from_values("UINT8", [2, 2], [0, 1, 254, 255], "inputs[0]", "inputs[0].data")
    nested = tensor_from_values("UINT8", [2, 2], [[0, 1], [254, 255]], "inputs[0]", "inputs[0].data")
    assert flat.dtype == np.uint8 and flat.shape == (2, 2) and np.array_equal(flat, nested)
    assert tensor_from_values("FP32", [1, 3], [1, 2.5, -3], "x", "x.data").dtype == np.float32
    assert tensor_from_values("UINT8", [1, 2], [3.0, 4.0], "x", "x.data").tolist() == [[3, 4]]


@pytest.mark.parametrize("datatype, shape, values, message", [
    ("UINT8", [1, 2], [1, 256], "x.data: expected values 0..255 for UINT8, got 256"),
    ("UINT8", [1, 2], [-1, 2], "x.data: expected values 0..255 for UINT8, got -1"),
    ("UINT8", [1, 2], [1.5, 2], "x.data: expected integers 0..255 for UINT8, got fractional values"),
    ("FP32", [1, 2], [True, False], "x.data: expected numbers, got booleans"),
    ("FP32", [1, 2], ["a", "b"], "x.data: expected numbers, got strings"),
    ("FP32", [1, 2], [1, None], "x.data: expected numbers, got values that are not all numbers"),
    ("FP32", [1, 2], [2**70, 1], "x.data: expected numbers"),
    ("FP32", [1, 3], [1, 2], "x.data: expected 3 values (shape [1, 3]), got 2"),
    ("FP32", [2, 2], [[1, 2, 3, 4]], "x.data: expected a flat list or lists nested like shape [2, 2], got nesting [1, 4]"),
    ("FP32", [1, 3], [[1], [2, 3]], "x.data: expected a flat list of 3 numbers or lists nested like shape [1, 3], got a ragged list"),
    ("INT8", [1], [1], "x.datatype: expected UINT8 or FP32, got 'INT8'"),
    ("FP32", "13", [1], "x.shape: expected a list of integers, got '13'"),
    ("FP32", [1, True], [1], "x.shape: expected a list of integers"),
    ("FP32", [1, -2], [1], "x.shape: expected sizes >= 0, got [1, -2]"),
    ("FP32", [2**40, 2**40], [1], "x.shape: expected axes whose product is at most"),
])
def test_values_that_do_not_fit_are_refused_naming_the_field(datatype: str, shape: object, values: object, message: str) -> None:
    with pytest.raises(InvalidInputError) as failure:
        tensor_from_values(datatype, shape, values, "x", "x.data")
    assert str(failure.value).startswith(message), str(failure.value)


def test_bytes_must_match_the_shape() -> None:
    array = tensor_from_bytes("FP32", [1, 2], np.array([1, 2], "<f4").tobytes(), "x", "raw")
    assert array.tolist() == [[1.0, 2.0]] and not array.flags.writeable
    with pytest.raises(InvalidInputError, match=r"raw: expected 8 bytes for x \(shape \[1, 2\] of FP32\), got 7 bytes"):
        tensor_from_bytes("FP32", [1, 2], b"\x00" * 7, "x", "raw")


def test_parameters_are_the_query_and_typed_alike_for_every_binding() -> None:
    assert query_from_values({"k": 3, "weights": "distance", "priority": 1, "timeout": 5}) == KnnQuery(k=3, weights="distance")
    for values, message in [({"k": "3"}, "parameters.k: expected an integer, got str '3'"),
                            ({"k": True}, "parameters.k: expected an integer, got bool True"),
                            ({"k": 3.0}, "parameters.k: expected an integer, got float 3.0"),
                            ({"weights": 1}, "parameters.weights: expected a string, got int 1"),
                            ({"k": None}, "parameters.k: expected an integer, got no value"),
                            ({"k": 0}, "parameters.k: expected an integer >= 1, got 0"),
                            ({"top_n": 2}, "parameters.top_n: expected one of k, weights")]:
        with pytest.raises(InvalidInputError) as failure:
            query_from_values(values)
        assert str(failure.value).startswith(message), str(failure.value)


def test_versions() -> None:
    assert version_from_text("", "v") is None and version_from_text("12", "v") == 12
    for text in ("0", "-1", "x", "١"):
        with pytest.raises(InvalidInputError):
            version_from_text(text, "v")


def test_outputs_travel_little_endian() -> None:
    assert output_bytes(np.array([1, 2], dtype=">i8")) == ("INT64", [2], np.array([1, 2], "<i8").tobytes())


def _request(**extra: object) -> dict[str, object]:
    return {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 2], "data": [1, 2]}], **extra}


def test_rest_bodies_json_and_binary() -> None:
    body = parse_infer(json.dumps(_request(id="a", parameters={"k": 2, "binary_data_output": True},
                                           outputs=[{"name": "scores", "parameters": {"binary_data": False}},
                                                    {"name": "predictions"}])).encode(), None)
    assert body.id == "a" and body.query == KnnQuery(k=2) and body.outputs == ("scores", "predictions")
    assert body.images.tolist() == [[1, 2]] and not body.binary_output("scores") and body.binary_output("predictions")
    header = json.dumps({"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 2],
                                     "parameters": {"binary_data_size": 8}}]}).encode()
    binary = parse_infer(header + np.array([1.5, 2.5], "<f4").tobytes(), len(header))
    assert binary.images.tolist() == [[1.5, 2.5]] and not binary.binary_output("predictions")
    text, length = render_infer("m", 3, body, [("scores", np.array([[0.25, 0.75]], np.float32)),
                                               ("predictions", np.array([1], np.int64))])
    assert length is not None
    document = json.loads(text[:length])
    assert document["model_version"] == "3" and document["id"] == "a"
    assert document["outputs"][0] == {"name": "scores", "datatype": "FP32", "shape": [1, 2], "data": [0.25, 0.75]}
    assert document["outputs"][1]["parameters"] == {"binary_data_size": 8} and text[length:] == np.array([1], "<i8").tobytes()
    plain, none = render_infer("m", 1, parse_infer(json.dumps(_request()).encode(), None), [("predictions", np.array([0]))])
    assert none is None and "id" not in json.loads(plain)


@pytest.mark.parametrize("document, json_length, message", [
    (_request(extra=1), None, "extra: expected keys among id, parameters, inputs, outputs"),
    (_request(outputs={"name": "x"}), None, "outputs: expected an array of requested outputs, got an object"),
    (_request(outputs=[{"name": 3}]), None, "outputs[0].name: expected a string, got the number 3"),
    (_request(outputs=[{"name": "scores", "parameters": {"binary_data": 1}}]), None,
     "outputs[0].parameters.binary_data: expected true or false, got the number 1"),
    (_request(parameters=[]), None, "parameters: expected a JSON object, got an array"),
    ({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 2], "data": [1, 2], "parameters": {"binary_data_size": 2}}]},
     None, "inputs[0].data: expected absent when parameters.binary_data_size is set"),
    ({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 2], "dat": [1, 2]}]}, None, "inputs[0].dat: expected keys"),
    ({"inputs": [{"name": "images"}, {"name": "more"}]}, None, "inputs: expected one input named 'images'"),
    ({"inputs": [{"name": None}]}, None, "inputs[0].name: expected a string, got null"),
])
def test_rest_bodies_that_are_wrong_name_the_field(document: object, json_length: int | None, message: str) -> None:
    with pytest.raises(InvalidInputError) as failure:
        parse_infer(json.dumps(document).encode(), json_length)
    assert str(failure.value).startswith(message), str(failure.value)


def test_the_header_length_is_a_count_within_the_body() -> None:
    assert header_length(None, 10) is None and header_length(" 4 ", 10) == 4
    for value in ("-1", "11", "x", "٣"):
        with pytest.raises(InvalidInputError, match="Inference-Header-Content-Length"):
            header_length(value, 10)
