"""Fuzzing the REST inference body through a real server: JSON documents near a good request and far from
it, wrong types in every field, random bytes, binary parts and header lengths. Every answer is 200 or a
documented client error with the protocol's {"error": ...} body, never a 5xx, and the server then answers a
good request."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knnserve.service.config import ServeConfig
from knnserve.service.server import KnnServer

DOCUMENTED = {200, 400, 404, 413}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                 st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                           max_leaves=12)
ROWS = {"blobs": [16], "hnsw": [16], "pixels": [6, 6]}


@pytest.fixture(scope="module")
def rest(models) -> Iterator[str]:  # type: ignore[no-untyped-def]
    server = KnnServer(ServeConfig(models_dir=models.root, port=0, http_port=0, grace_s=1.0))
    server.start()
    server.load_models()
    yield f"127.0.0.1:{server.http_port}"
    server.stop(0)


def sometimes(draw: st.DrawFn, odds: int) -> bool:
    return draw(st.integers(min_value=1, max_value=odds)) == 1


@st.composite
def documents(draw: st.DrawFn, model: str) -> tuple[dict[str, Any] | Any, bytes]:
    """Mostly plausible requests with one or two fields changed; some wild JSON values. (document, binary part)."""
    if sometimes(draw, 8):
        return draw(JSON_VALUES), b""
    datatype = draw(st.sampled_from(["UINT8", "FP32"] * 8 + ["INT64", "BYTES", "", "fp32"]))
    shape = [draw(st.integers(min_value=1, max_value=4)), *ROWS[model]]
    if sometimes(draw, 4):
        shape = [draw(st.integers(min_value=0, max_value=4)), *draw(st.sampled_from([[36], [6, 6], [15], [16], []]))]
    if sometimes(draw, 6):
        shape = draw(st.lists(st.one_of(st.integers(min_value=-3, max_value=2**62), JSON_LEAVES), max_size=4))
    count = int(np.prod([s for s in shape if isinstance(s, int) and not isinstance(s, bool)] or [0])) if len(shape) else 1
    count = min(max(count, 0), 400)
    tensor: dict[str, Any] = {"name": draw(st.sampled_from(["images"] * 12 + ["INPUT0", ""])), "datatype": datatype, "shape": shape}
    binary = b""
    if sometimes(draw, 3):
        size = count * (1 if datatype == "UINT8" else 4) + draw(st.sampled_from([0, 0, 0, 1, -1]))
        binary = draw(st.binary(min_size=max(size, 0), max_size=max(size, 0)))
        tensor["parameters"] = {"binary_data_size": draw(st.sampled_from([len(binary), len(binary) + 1, "x", True]))
                                if sometimes(draw, 8) else len(binary)}
    else:
        value = st.integers(min_value=0, max_value=255) if datatype == "UINT8" else st.floats(-1e3, 1e3, width=32)
        if sometimes(draw, 6):
            value = st.one_of(st.integers(min_value=-5, max_value=300), st.floats(width=32), JSON_LEAVES)
        values = draw(st.lists(value, min_size=count, max_size=count))
        tensor["data"] = values if not sometimes(draw, 8) else draw(JSON_VALUES)
    document: dict[str, Any] = {"inputs": [tensor] if not sometimes(draw, 10) else draw(st.lists(st.just(tensor), max_size=3))}
    if sometimes(draw, 3):
        names = ["k", "weights", "tie_break", "nprobe", "ef_search", "priority", "timeout", "binary_data_output", "top_n", "x"]
        plausible = st.one_of(st.integers(min_value=1, max_value=8), st.sampled_from(["uniform", "distance", "lowest", "nearest"]))
        wild = st.one_of(st.integers(min_value=-2, max_value=70000), JSON_LEAVES)
        document["parameters"] = draw(st.dictionaries(st.sampled_from(names), wild if sometimes(draw, 3) else plausible, max_size=3))
    if sometimes(draw, 2):
        document["outputs"] = [{"name": draw(st.sampled_from(["predictions", "scores", "neighbor_ids", "linear_scores", "?"])),
                                **({"parameters": draw(st.dictionaries(st.sampled_from(["binary_data", "classification"]), JSON_LEAVES,
                                                                      max_size=2))} if sometimes(draw, 2) else {})}
                               for _ in range(draw(st.integers(min_value=0, max_value=3)))]
    if sometimes(draw, 8):
        document[draw(st.sampled_from(["id", "model_name", "inputs", "outputs", "parameters"]))] = draw(JSON_VALUES)
    return document, binary


def post(rest: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    host, port = rest.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def check(status: int, body: bytes) -> None:
    assert status in DOCUMENTED, (status, body[:500])
    if status != 200:
        error = json.loads(body)
        assert isinstance(error, dict) and list(error) == ["error"] and error["error"], body[:500]


@FUZZ
@given(model=st.sampled_from(["blobs", "hnsw", "pixels", "nope"]), data=st.data())
def test_fuzzed_json_bodies_get_documented_answers(rest: str, model: str, data: st.DataObject) -> None:
    document, binary = data.draw(documents(model if model in ROWS else "blobs"))
    text = json.dumps(document).encode()
    headers: dict[str, str] = {}
    if binary or data.draw(st.booleans()):
        length = data.draw(st.sampled_from([len(text), len(text), len(text) - 1, len(text) + len(binary) + 1, 0]))
        headers["Inference-Header-Content-Length"] = str(length) if not sometimes(data.draw, 10) else "-1"
    version = data.draw(st.sampled_from(["", "", "/versions/1", "/versions/2", "/versions/0", "/versions/x"]))
    check(*post(rest, f"/v2/models/{model}{version}/infer", text + binary, headers))


@FUZZ
@given(body=st.binary(max_size=300), header=st.one_of(st.none(), st.integers(min_value=-1, max_value=400).map(str)))
def test_random_bytes_get_documented_answers(rest: str, body: bytes, header: str | None) -> None:
    check(*post(rest, "/v2/models/pixels/infer", body, {} if header is None else {"Inference-Header-Content-Length": header}))


def test_the_server_still_answers_after_the_fuzz(rest: str, models) -> None:  # type: ignore[no-untyped-def]
    x = models.pix.x_query[:3]
    body = json.dumps({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [3, 6, 6], "data": x.tolist()}]}).encode()
    status, answer = post(rest, "/v2/models/pixels/infer", body, {})
    assert status == 200
    np.testing.assert_array_equal(json.loads(answer)["outputs"][0]["data"], models.pixels.classify(x).predictions)
