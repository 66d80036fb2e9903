"""The Open Inference Protocol over HTTP/REST (serve --http-port) through a real server on 127.0.0.1:0:
the real tritonclient.http (binary data and JSON), the same answers and errors as the gRPC binding and
Classify, the error bodies and statuses, limits, the token, request ids, metrics, readiness, HTTPS."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from knnserve.service.config import ServeConfig, TlsConfig
from knnserve.service.server import KnnServer
from knnserve_client import Client
from knnserve_client.wire.inference import grpc_predict_v2_pb2 as v2
from knnserve_client.wire.inference import grpc_predict_v2_pb2_grpc

PROBE = Path(__file__).with_name("tritonclient_probe.py")
TOKEN = "rest-token"


@pytest.fixture(scope="module")
def rest_server(models) -> Iterator[tuple[KnnServer, str, str]]:  # type: ignore[no-untyped-def]
    """One read-only server with the REST port on: (server, gRPC target, REST host:port)."""
    server = KnnServer(ServeConfig(models_dir=models.root, port=0, http_port=0, grace_s=1.0))
    port = server.start()
    server.load_models()
    yield server, f"127.0.0.1:{port}", f"127.0.0.1:{server.http_port}"
    server.stop(0)


def triton(target: str, steps: list[dict[str, Any]], tmp_path: Path, *, http: bool) -> list[dict[str, Any]]:
    """Run the steps through tritonclient (http or grpc) in its own process; one result a step."""
    script = tmp_path / f"steps-{len(list(tmp_path.glob('steps-*')))}.json"
    script.write_text(json.dumps(steps))
    command = [sys.executable, str(PROBE), *(["--http"] if http else []), target, str(script)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def request(address: str, method: str, path: str, body: bytes | str | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request with the standard library: (status, headers, body)."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=headers or {},
                           encode_chunked="Transfer-Encoding" in (headers or {}))
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def infer_json(x: np.ndarray, *, datatype: str | None = None, **extra: Any) -> str:
    datatype = datatype or ("UINT8" if x.dtype == np.uint8 else "FP32")
    return json.dumps({"inputs": [{"name": "images", "datatype": datatype, "shape": list(x.shape), "data": x.tolist()}], **extra})


def save(tmp_path: Path, name: str, x: np.ndarray) -> str:
    path = tmp_path / f"{name}.npy"
    np.save(path, x)
    return str(path)


def normalised(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata with shapes as integers (protobuf's JSON writes int64 as strings)."""
    copy = json.loads(json.dumps(metadata))
    for group in ("inputs", "outputs"):
        for tensor in copy.get(group, []):
            tensor["shape"] = [int(s) for s in tensor["shape"]]
    return copy


# -- tritonclient.http, unchanged -----------------------------------------------------------------


def test_tritonclient_http_health_and_metadata_match_grpc(rest_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, target, rest = rest_server
    steps = [{"call": "live"}, {"call": "ready"}, {"call": "model_ready", "model": "blobs"},
             {"call": "model_ready", "model": "blobs", "version": "1"}, {"call": "model_ready", "model": "nope"},
             {"call": "model_ready", "model": "blobs", "version": "9"},
             {"call": "server_metadata"}, {"call": "model_metadata", "model": "blobs"},
             {"call": "model_metadata", "model": "pixels", "version": "1"}]
    over_http = triton(rest, steps, tmp_path, http=True)
    over_grpc = triton(target, steps, tmp_path, http=False)
    assert [r["ok"] for r in over_http[:6]] == [True, True, True, True, False, False]
    assert [r["ok"] for r in over_grpc[:6]] == [True, True, True, True, False, False]
    assert over_http[6]["ok"]["name"] == "knnserve" and over_http[6]["ok"]["extensions"] == ["binary_tensor_data"]
    blobs = over_http[7]["ok"]
    assert blobs["versions"] == ["1", "2"] and blobs["platform"] == "knnserve_faiss"
    assert blobs["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 16]}]
    for http_answer, grpc_answer in zip(over_http[7:], over_grpc[7:]):
        assert http_answer["ok"] == normalised(grpc_answer["ok"])


def test_tritonclient_http_infer_binary_and_json_equal_grpc_and_classify(rest_server, models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, target, rest = rest_server
    images = models.pix.x_query[:12]
    x = save(tmp_path, "x", images)
    h = save(tmp_path, "h", models.hnsw_data.x_query[:5])
    steps = [
        {"call": "infer", "model": "pixels", "input": x, "request_id": "req-7"},
        {"call": "infer", "model": "pixels", "input": x, "binary": False, "outputs": ["predictions", "scores"]},
        {"call": "infer", "model": "pixels", "input": x, "datatype": "FP32", "outputs": ["predictions"]},
        {"call": "infer", "model": "pixels", "input": x, "binary": False, "outputs": ["scores"],
         "parameters": {"k": 3, "weights": "distance"}},
        {"call": "infer", "model": "hnsw", "input": h, "outputs": ["neighbor_ids", "neighbor_distances", "predictions"],
         "parameters": {"k": 4, "ef_search": 80}},
        {"call": "infer", "model": "blobs", "input": save(tmp_path, "b", models.blobs.x_query[:7]), "version": "1",
         "binary": False, "outputs": ["predictions", "neighbor_labels"]},
    ]
    over_http = triton(rest, steps, tmp_path, http=True)
    over_grpc = triton(target, [{k: v for k, v in step.items() if k != "binary"} for step in steps], tmp_path, http=False)
    for http_answer, grpc_answer in zip(over_http, over_grpc):
        assert http_answer["ok"]["order"] == grpc_answer["ok"]["order"]
        assert http_answer["ok"]["model_version"] == grpc_answer["ok"]["model_version"]
        for name, values in grpc_answer["ok"]["outputs"].items():
            np.testing.assert_array_equal(np.asarray(http_answer["ok"]["outputs"][name]), np.asarray(values), err_msg=name)
    with Client(target, timeout=10) as client:
        expected = client.classify("pixels", images, top_n=3)
        weighted = client.classify("pixels", images, k=3, weights="distance", top_n=3)
        pinned = client.classify("blobs", models.blobs.x_query[:7], version=1, return_neighbors=True)
    default = over_http[0]["ok"]
    assert default["id"] == "req-7" and default["order"] == ["predictions", "scores"]
    np.testing.assert_array_equal(default["outputs"]["predictions"], expected.knn.predictions)
    np.testing.assert_allclose(np.sort(default["outputs"]["scores"], axis=1)[:, ::-1], expected.knn.top_scores, rtol=1e-6)
    np.testing.assert_array_equal(over_http[1]["ok"]["outputs"]["predictions"], expected.knn.predictions)
    np.testing.assert_array_equal(over_http[2]["ok"]["outputs"]["predictions"], expected.knn.predictions)
    np.testing.assert_array_equal(np.argmax(over_http[3]["ok"]["outputs"]["scores"], axis=1), weighted.knn.predictions)
    from knnserve_client import KnnQuery

    ids = models.hnsw.search(models.hnsw.prepare(models.hnsw_data.x_query[:5]), models.hnsw.resolve(KnnQuery(k=4, ef_search=80)))[1]
    np.testing.assert_array_equal(over_http[4]["ok"]["outputs"]["neighbor_ids"], ids)
    assert over_http[5]["ok"]["model_version"] == "1"
    np.testing.assert_array_equal(over_http[5]["ok"]["outputs"]["neighbor_labels"], pinned.neighbors.labels)


def test_errors_name_the_field_alike_in_both_bindings(rest_server, models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, target, rest = rest_server
    x = save(tmp_path, "x", models.blobs.x_query[:2])
    steps = [
        {"call": "infer", "model": "nope", "input": x},
        {"call": "infer", "model": "pixels", "input": x},  # blobs rows: the wrong shape for pixels
        {"call": "infer", "model": "blobs", "input": x, "outputs": ["nothing"]},
        {"call": "infer", "model": "blobs", "input": x, "input_name": "INPUT0"},
        {"call": "infer", "model": "blobs", "input": x, "parameters": {"k": "five"}},
        {"call": "infer", "model": "blobs", "input": x, "parameters": {"depth": 3}},
        {"call": "infer", "model": "blobs", "input": x, "parameters": {"k": 0}},
        {"call": "infer", "model": "blobs", "input": x, "version": "x1"},
        {"call": "infer", "model": "blobs", "input": x, "version": "7"},
        {"call": "model_metadata", "model": "nope"},
        {"call": "infer", "model": "blobs", "input": x, "datatype": "UINT8"},
        {"call": "infer", "model": "blobs", "input": x},
    ]
    over_http = triton(rest, steps, tmp_path, http=True)
    over_grpc = triton(target, steps, tmp_path, http=False)
    statuses = [r.get("error") for r in over_http]
    assert statuses[0] == statuses[8] == statuses[9] == "404", over_http
    assert statuses[1:8] == ["400"] * 7, over_http
    assert "ok" in over_http[10] and "ok" in over_http[11]  # uint8 rows are fine for a float model; still serving
    for index in range(10):
        assert over_http[index]["message"] == over_grpc[index]["message"], (index, over_http[index], over_grpc[index])
    assert "inputs[0].shape: expected (n, 6, 6) or (n, 36)" in over_http[1]["message"]
    assert "parameters.k: expected an integer, got str 'five'" in over_http[4]["message"]


# -- errors, limits, request ids, metrics ---------------------------------------------------------


BAD_BODIES: list[tuple[str, int, str]] = [
    ("{bad", 400, "body: expected a JSON object (the inference request), got text that is not JSON"),
    ("[1, 2]", 400, "body: expected a JSON object, got an array"),
    ('{"inputs": []}', 400, "inputs: expected one input named 'images'"),
    ('{"inputs": {}}', 400, "inputs: expected an array of input tensors, got an object"),
    ('{"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 6, 6]}]}', 400, "inputs[0].data: expected the tensor's values"),
    ('{"inputs": [{"name": "images", "datatype": "INT8", "shape": [1, 36], "data": [0]}]}', 400,
     "inputs[0].datatype: expected UINT8 or FP32, got 'INT8'"),
    ('{"inputs": [{"name": "images", "datatype": "UINT8", "shape": "1x36", "data": [0]}]}', 400,
     "inputs[0].shape: expected a list of integers"),
    ('{"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 36], "data": [1, 2]}]}', 400,
     "inputs[0].data: expected 36 values (shape [1, 36]), got 2"),
    ('{"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 2], "data": [1, 256]}]}', 400,
     "inputs[0].data: expected values 0..255 for UINT8, got 256"),
    ('{"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 2], "data": [true, false]}]}', 400,
     "inputs[0].data: expected numbers, got booleans"),
    ('{"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 2], "data": [[1], [2, 3]]}]}', 400, "inputs[0].data: expected"),
    ('{"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 2], "data": [1, 2]}], "outptus": []}', 400,
     "outptus: expected keys among id, parameters, inputs, outputs"),
    ('{"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 2], "data": [1, 2], '
     '"parameters": {"shared_memory_region": "r"}}]}', 400, "inputs[0].parameters.shared_memory_region: expected only binary_data_size"),
    ('{"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 2], "data": [1, 2]}], "id": 7}', 400, "id: expected a string"),
    ('{"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 2], "data": [1, 2]}], '
     '"parameters": {"binary_data_output": "yes"}}', 400, "parameters.binary_data_output: expected true or false"),
    ('{"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 2], "data": [1, 2]}], '
     '"outputs": [{"name": "scores", "parameters": {"classification": 3}}]}', 400, "outputs[0].parameters.classification"),
]


@pytest.mark.parametrize("body, status, message", BAD_BODIES)
def test_bad_bodies_get_the_error_body_and_status(rest_server, body: str, status: int, message: str) -> None:  # type: ignore[no-untyped-def]
    code, headers, answer = request(rest_server[2], "POST", "/v2/models/pixels/infer", body)
    assert code == status
    assert headers["content-type"].startswith("application/json")
    assert message in json.loads(answer)["error"]


def test_binary_data_extension_errors_and_success(rest_server, models) -> None:  # type: ignore[no-untyped-def]
    rest = rest_server[2]
    x = models.pix.x_query[:2]
    header = json.dumps({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [2, 6, 6],
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "parameters": {"binary_data_output": True}}).encode()
    code, headers, body = request(rest, "POST", "/v2/models/pixels/infer", header + x.tobytes(),
                                  {"Inference-Header-Content-Length": str(len(header))})
    assert code == 200 and headers["content-type"] == "application/octet-stream"
    length = int(headers["inference-header-content-length"])
    answer = json.loads(body[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in answer["outputs"]]
    predictions = np.frombuffer(body[length:length + sizes[0]], dtype="<i8")
    np.testing.assert_array_equal(predictions, models.pixels.classify(x).predictions)
    assert len(body) == length + sum(sizes)
    for data, extra, message in [
        (header + x.tobytes()[:-1], {"Inference-Header-Content-Length": str(len(header))},
         "inputs[0].parameters.binary_data_size: expected the 71 bytes after the JSON"),
        (header + x.tobytes(), {"Inference-Header-Content-Length": "x"}, "Inference-Header-Content-Length: expected an integer"),
        (header + x.tobytes(), {"Inference-Header-Content-Length": str(len(header) + 10**6)}, "Inference-Header-Content-Length"),
        (header + x.tobytes(), {}, "body: expected a JSON object (the inference request), got text that is not JSON"),
    ]:
        code, _, body = request(rest, "POST", "/v2/models/pixels/infer", data, extra)
        assert code == 400 and message in json.loads(body)["error"], body


def test_statuses_of_the_other_routes(rest_server) -> None:  # type: ignore[no-untyped-def]
    rest = rest_server[2]
    cases = [("GET", "/v2/models/nope", 404, "model 'nope' is not served"),
             ("GET", "/v2/models/blobs/versions/9", 404, "version"),
             ("GET", "/v2/models/blobs/versions/zero", 400, "version: expected a positive integer"),
             ("GET", "/v2/models/blobs/versions/zero/ready", 400, "version: expected a positive integer"),
             ("POST", "/v2/models/blobs/versions/0/infer", 400, "model_version: expected a positive integer"),
             ("GET", "/v2/nothing", 404, "the routes are"),
             ("DELETE", "/v2/models/blobs", 405, "Method Not Allowed"),
             ("GET", "/v2/models/blobs/infer", 405, "Method Not Allowed")]
    for method, path, status, message in cases:
        code, headers, body = request(rest, method, path)
        assert code == status and message in json.loads(body)["error"], (path, code, body)
    for path, status in [("/v2/health/live", 200), ("/v2/health/ready", 200), ("/v2/models/blobs/ready", 200),
                         ("/v2/models/blobs/versions/2/ready", 200), ("/v2/models/nope/ready", 400),
                         ("/v2/models/blobs/versions/3/ready", 400)]:
        code, _, body = request(rest, "GET", path)
        assert (code, body) == (status, b""), path


def test_request_ids_are_echoed_and_the_id_field_too(rest_server, models) -> None:  # type: ignore[no-untyped-def]
    rest = rest_server[2]
    body = infer_json(models.pix.x_query[:1], id="mine")
    code, headers, answer = request(rest, "POST", "/v2/models/pixels/infer", body, {"x-request-id": "trace-42"})
    assert code == 200 and headers["x-request-id"] == "trace-42" and json.loads(answer)["id"] == "mine"
    code, headers, _ = request(rest, "POST", "/v2/models/nope/infer", body, {"x-request-id": "trace-43"})
    assert code == 404 and headers["x-request-id"] == "trace-43"
    _, first, _ = request(rest, "GET", "/v2/health/live")
    _, second, _ = request(rest, "GET", "/v2/health/live", headers={"x-request-id": "x" * 200})  # too long: a fresh one
    assert len(first["x-request-id"]) == 32 and first["x-request-id"] != second["x-request-id"] != "x" * 200


def test_metrics_count_rest_calls_by_method_and_code(rest_server, models) -> None:  # type: ignore[no-untyped-def]
    server, _, rest = rest_server
    registry = server.metrics.registry

    def count(method: str, code: str) -> float:
        return registry.get_sample_value("knnserve_requests_total", {"method": method, "code": code}) or 0.0

    before = (count("REST ModelInfer", "OK"), count("REST ModelInfer", "INVALID_ARGUMENT"), count("REST ServerLive", "OK"),
              count("REST ModelMetadata", "NOT_FOUND"))
    request(rest, "POST", "/v2/models/pixels/infer", infer_json(models.pix.x_query[:2]))
    request(rest, "POST", "/v2/models/pixels/infer", "{")
    request(rest, "GET", "/v2/health/live")
    request(rest, "GET", "/v2/models/nope")
    after = (count("REST ModelInfer", "OK"), count("REST ModelInfer", "INVALID_ARGUMENT"), count("REST ServerLive", "OK"),
             count("REST ModelMetadata", "NOT_FOUND"))
    assert [b - a for a, b in zip(before, after)] == [1, 1, 1, 1]
    assert registry.get_sample_value("knnserve_request_latency_seconds_count", {"method": "REST ModelInfer"}) >= 1


def test_oversized_bodies_are_refused_before_they_are_read(start_server, models) -> None:  # type: ignore[no-untyped-def]
    server, _ = start_server(http_port=0, max_message_bytes=4096, max_rows_per_request=5)
    rest = f"127.0.0.1:{server.http_port}"
    # Declared too large: the answer comes without the body ever being sent.
    for expect in ({}, {"Expect": "100-continue"}):
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as raw:
            head = ["POST /v2/models/pixels/infer HTTP/1.1", "Host: x", "Content-Length: 100000000",
                    *(f"{k}: {v}" for k, v in expect.items()), "", ""]
            raw.sendall("\r\n".join(head).encode())
            answer = raw.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 413 "), answer
        assert "100000000 bytes exceed the limit of 4096 bytes per message" in answer
    # Chunked, with no length declared: refused once it passes the limit.
    code, _, body = request(rest, "POST", "/v2/models/pixels/infer", iter([b"{" + b" " * 3000, b" " * 3000]),  # type: ignore[arg-type]
                            {"Transfer-Encoding": "chunked"})
    assert code == 413 and "exceed the limit of 4096 bytes" in json.loads(body)["error"]
    code, _, body = request(rest, "POST", "/v2/models/pixels/infer", infer_json(models.pix.x_query[:6]))
    assert code == 413 and "6 rows exceed the limit of 5 rows per request" in json.loads(body)["error"]
    code, _, _ = request(rest, "POST", "/v2/models/pixels/infer", infer_json(models.pix.x_query[:5]))
    assert code == 200


def test_the_bearer_token_guards_everything_but_liveness_readiness_and_metadata(start_server, models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, _ = start_server(http_port=0, token=TOKEN)
    rest = f"127.0.0.1:{server.http_port}"
    body = infer_json(models.blobs.x_query[:2])
    for path in ("/v2", "/v2/health/live", "/v2/health/ready"):
        assert request(rest, "GET", path)[0] == 200
    for method, path, data in [("GET", "/v2/models/blobs", None), ("GET", "/v2/models/blobs/ready", None),
                               ("POST", "/v2/models/blobs/infer", body), ("GET", "/v2/models/nope", None)]:
        code, headers, answer = request(rest, method, path, data)
        assert code == 401 and headers["www-authenticate"].startswith("Bearer")
        assert json.loads(answer) == {"error": "missing bearer token (header Authorization: Bearer <token>)"}
        code, _, answer = request(rest, method, path, data, {"Authorization": "Bearer nope"})
        assert code == 401 and json.loads(answer) == {"error": "wrong bearer token"}
        code, _, _ = request(rest, method, path, data, {"Authorization": f"bearer {TOKEN}"})
        assert code == (404 if "nope" in path else 200)
    x = save(tmp_path, "x", models.blobs.x_query[:2])
    anonymous, right = triton(rest, [{"call": "infer", "model": "blobs", "input": x},
                                     {"call": "infer", "model": "blobs", "input": x,
                                      "headers": {"Authorization": f"Bearer {TOKEN}"}}], tmp_path, http=True)
    assert anonymous["error"] == "401" and "ok" in right


def test_readiness_follows_loading_and_drain(start_server) -> None:  # type: ignore[no-untyped-def]
    server, target = start_server(http_port=0, load=False)
    rest = f"127.0.0.1:{server.http_port}"
    assert request(rest, "GET", "/v2/health/live")[0] == 200
    assert request(rest, "GET", "/v2/health/ready")[0] == 400
    code, _, body = request(rest, "POST", "/v2/models/blobs/infer", infer_json(np.zeros((1, 16), np.float32)))
    assert code == 503 and "still loading" in json.loads(body)["error"]
    server.load_models()
    assert request(rest, "GET", "/v2/health/ready")[0] == 200
    server.drain(0)
    assert request(rest, "GET", "/v2/health/ready")[0] == 400
    assert request(rest, "GET", "/v2/models/blobs/ready")[0] == 400
    with grpc.insecure_channel(target) as channel:  # both bindings say the same
        assert grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel).ServerReady(v2.ServerReadyRequest(), timeout=5).ready is False
    assert request(rest, "POST", "/v2/models/blobs/infer", infer_json(np.zeros((1, 16), np.float32)))[0] == 200  # still served


def test_stop_closes_the_rest_port(start_server) -> None:  # type: ignore[no-untyped-def]
    server, _ = start_server(http_port=0)
    port = server.http_port
    server.stop(1.0)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_busy_http_port_fails_the_start_and_frees_the_grpc_port(models) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        server = KnnServer(ServeConfig(models_dir=models.root, port=0, http_port=busy))
        with pytest.raises(OSError, match="for HTTP"):
            server.start()
    with pytest.raises(OSError):  # the gRPC server it had started is stopped again
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
def test_https_with_the_grpc_servers_certificate(start_server, models, self_signed_cert: tuple[Path, Path],
                                                  curl: str) -> None:  # type: ignore[no-untyped-def]
    cert, key = self_signed_cert
    server, _ = start_server(http_port=0, tls=TlsConfig(cert=cert, key=key))
    port = server.http_port
    secure = subprocess.run([curl, "-sS", "--cacert", str(cert), "--resolve", f"localhost:{port}:127.0.0.1",
                             "-d", infer_json(models.blobs.x_query[:3]), f"https://localhost:{port}/v2/models/blobs/infer"],
                            capture_output=True, text=True, timeout=30)
    assert secure.returncode == 0, secure.stderr
    predictions = json.loads(secure.stdout)["outputs"][0]["data"]
    np.testing.assert_array_equal(predictions, models.blobs_v2.classify(models.blobs.x_query[:3]).predictions)
    plaintext = subprocess.run([curl, "-sS", f"http://127.0.0.1:{port}/v2/health/live"], capture_output=True, text=True, timeout=30)
    assert plaintext.returncode != 0 or "200" not in plaintext.stdout


def test_concurrent_one_row_requests_all_answer_like_classify(rest_server, models) -> None:  # type: ignore[no-untyped-def]
    """16 clients at once (their calls wait on the data plane in the loop's executor, batched together)."""
    from concurrent.futures import ThreadPoolExecutor

    rest = rest_server[2]
    x = models.hnsw_data.x_query[:48]

    def one(i: int) -> int:
        code, _, body = request(rest, "POST", "/v2/models/hnsw/infer", infer_json(x[i:i + 1], outputs=[{"name": "predictions"}]))
        assert code == 200, body
        return int(json.loads(body)["outputs"][0]["data"][0])

    with ThreadPoolExecutor(16) as pool:
        predictions = list(pool.map(one, range(len(x))))
    np.testing.assert_array_equal(predictions, models.hnsw.classify(x).predictions)
