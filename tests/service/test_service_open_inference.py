"""The Open Inference Protocol (KServe v2) with the real tritonclient[grpc]: liveness, readiness,
metadata, UINT8 and FP32 inference, output subsets, request ids, the bearer token through headers,
error codes, and predictions equal to Classify on the same rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from knnserve_client import Client, KnnQuery
from knnserve_client.wire.inference import grpc_predict_v2_pb2 as v2
from knnserve_client.wire.inference import grpc_predict_v2_pb2_grpc

PROBE = Path(__file__).with_name("tritonclient_probe.py")
TOKEN = "v2-token"


def triton(target: str, steps: list[dict[str, Any]], tmp_path: Path) -> list[dict[str, Any]]:
    """Run the steps through tritonclient in its own process; one result a step."""
    script = tmp_path / f"steps-{len(list(tmp_path.glob('steps-*')))}.json"
    script.write_text(json.dumps(steps))
    done = subprocess.run([sys.executable, str(PROBE), target, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def save(tmp_path: Path, name: str, x: np.ndarray) -> str:
    path = tmp_path / f"{name}.npy"
    np.save(path, x)
    return str(path)


def test_liveness_readiness_and_metadata(shared_server, models, tmp_path: Path) -> None:
    target = shared_server[1]
    live, ready, model_ready, pinned, missing, server, meta, pixels = triton(target, [
        {"call": "live"}, {"call": "ready"}, {"call": "model_ready", "model": "blobs"},
        {"call": "model_ready", "model": "blobs", "version": "1"}, {"call": "model_ready", "model": "nope"},
        {"call": "server_metadata"}, {"call": "model_metadata", "model": "blobs"}, {"call": "model_metadata", "model": "pixels"},
    ], tmp_path)
    assert live["ok"] is True and ready["ok"] is True and model_ready["ok"] is True and pinned["ok"] is True
    assert missing["ok"] is False
    assert server["ok"]["name"] == "knnserve"
    blobs = meta["ok"]
    assert blobs["name"] == "blobs" and blobs["versions"] == ["1", "2"]
    assert blobs["inputs"] == [{"name": "images", "datatype": "FP32", "shape": ["-1", "16"]}]
    assert [o["name"] for o in blobs["outputs"]][:2] == ["predictions", "scores"]
    assert {"name": "scores", "datatype": "FP32", "shape": ["-1", "4"]} in blobs["outputs"]
    assert pixels["ok"]["inputs"][0] == {"name": "images", "datatype": "UINT8", "shape": ["-1", "6", "6"]}


def test_infer_equals_classify_uint8_and_fp32(shared_server, models, tmp_path: Path) -> None:
    target = shared_server[1]
    images = models.pix.x_query[:12]
    uint8, fp32, subset, neighbors = triton(target, [
        {"call": "infer", "model": "pixels", "input": save(tmp_path, "x", images), "request_id": "req-7"},
        {"call": "infer", "model": "pixels", "input": save(tmp_path, "x", images), "datatype": "FP32"},
        {"call": "infer", "model": "pixels", "input": save(tmp_path, "x", images), "outputs": ["scores"],
         "parameters": {"k": 3, "weights": "distance"}},
        {"call": "infer", "model": "hnsw", "input": save(tmp_path, "h", models.hnsw_data.x_query[:5]),
         "outputs": ["neighbor_ids", "predictions"], "parameters": {"k": 4, "ef_search": 80}},
    ], tmp_path)
    with Client(target, timeout=10) as client:
        expected = client.classify("pixels", images, top_n=3)
        weighted = client.classify("pixels", images, k=3, weights="distance", top_n=3)
    answer = uint8["ok"]
    assert answer["id"] == "req-7" and answer["model_version"] == "1" and answer["order"] == ["predictions", "scores"]
    np.testing.assert_array_equal(answer["outputs"]["predictions"], expected.knn.predictions)
    scores = np.asarray(answer["outputs"]["scores"])
    assert scores.shape == (12, 3)
    np.testing.assert_allclose(np.sort(scores, axis=1)[:, ::-1], expected.knn.top_scores, rtol=1e-6)
    np.testing.assert_array_equal(fp32["ok"]["outputs"]["predictions"], expected.knn.predictions)
    assert subset["ok"]["order"] == ["scores"]
    np.testing.assert_array_equal(np.argmax(subset["ok"]["outputs"]["scores"], axis=1), weighted.knn.predictions)
    ids = models.hnsw.search(models.hnsw.prepare(models.hnsw_data.x_query[:5]), models.hnsw.resolve(KnnQuery(k=4, ef_search=80)))[1]
    np.testing.assert_array_equal(neighbors["ok"]["outputs"]["neighbor_ids"], ids)
    assert neighbors["ok"]["order"] == ["neighbor_ids", "predictions"]


def test_errors_are_not_found_and_invalid_argument(shared_server, models, tmp_path: Path) -> None:
    target = shared_server[1]
    x = save(tmp_path, "x", models.blobs.x_query[:2])
    results = triton(target, [
        {"call": "infer", "model": "nope", "input": x},
        {"call": "infer", "model": "pixels", "input": x},  # blobs rows: the wrong shape for pixels
        {"call": "infer", "model": "blobs", "input": x, "outputs": ["nothing"]},
        {"call": "infer", "model": "blobs", "input": x, "input_name": "INPUT0"},
        {"call": "infer", "model": "blobs", "input": x, "parameters": {"k": "five"}},
        {"call": "infer", "model": "blobs", "input": x, "parameters": {"depth": 3}},
        {"call": "infer", "model": "blobs", "input": x, "version": "x1"},
        {"call": "model_metadata", "model": "nope"},
        {"call": "infer", "model": "blobs", "input": x},
    ], tmp_path)
    codes = [r.get("error") for r in results]
    assert codes[0] == "StatusCode.NOT_FOUND" and codes[7] == "StatusCode.NOT_FOUND"
    assert codes[1:7] == ["StatusCode.INVALID_ARGUMENT"] * 6, results
    assert "inputs[0].shape: expected (n, 6, 6) or (n, 36)" in results[1]["message"]
    assert "outputs: expected names among" in results[2]["message"]
    assert "parameters.k: expected an integer, got str 'five'" in results[4]["message"]
    assert "parameters.depth" in results[5]["message"]
    assert "ok" in results[8]  # and the server keeps serving


def test_the_bearer_token_travels_in_headers(start_server, models, tmp_path: Path) -> None:
    _, target = start_server(token=TOKEN)
    x = save(tmp_path, "x", models.blobs.x_query[:2])
    anonymous, wrong, right, live, ready = triton(target, [
        {"call": "infer", "model": "blobs", "input": x},
        {"call": "infer", "model": "blobs", "input": x, "headers": {"authorization": "Bearer nope"}},
        {"call": "infer", "model": "blobs", "input": x, "headers": {"authorization": f"Bearer {TOKEN}"}},
        {"call": "live"}, {"call": "ready"},
    ], tmp_path)
    assert anonymous["error"] == wrong["error"] == "StatusCode.UNAUTHENTICATED"
    assert "ok" in right and live["ok"] is True and ready["ok"] is True  # probes stay open


def test_server_ready_follows_health(start_server) -> None:
    server, target = start_server(load=False)
    with grpc.insecure_channel(target) as channel:
        stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(v2.ServerLiveRequest(), timeout=5).live is True
        assert stub.ServerReady(v2.ServerReadyRequest(), timeout=5).ready is False
        server.load_models()
        assert stub.ServerReady(v2.ServerReadyRequest(), timeout=5).ready is True
        server.drain(0)
        assert stub.ServerReady(v2.ServerReadyRequest(), timeout=5).ready is False


def test_typed_contents_and_both_at_once(shared_server, models) -> None:
    x = models.pix.x_query[:3]
    request = v2.ModelInferRequest(model_name="pixels")
    tensor = request.inputs.add(name="images", datatype="UINT8", shape=list(x.shape))
    tensor.contents.uint_contents.extend(x.ravel().tolist())
    with grpc.insecure_channel(shared_server[1]) as channel, Client(shared_server[1], timeout=10) as client:
        stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelInfer(request, timeout=10)
        predictions = np.frombuffer(response.raw_output_contents[0], dtype="<i8")
        np.testing.assert_array_equal(predictions, client.classify("pixels", x).knn.predictions)
        request.raw_input_contents.append(x.tobytes())
        with pytest.raises(grpc.RpcError) as failure:
            stub.ModelInfer(request, timeout=10)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "one or the other" in failure.value.details()


def test_the_repository_and_triton_only_rpcs_are_unimplemented(shared_server) -> None:
    with grpc.insecure_channel(shared_server[1]) as channel:
        for method in ("RepositoryIndex", "ModelStatistics", "ModelConfig"):
            call = channel.unary_unary(f"/inference.GRPCInferenceService/{method}", request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
            with pytest.raises(grpc.RpcError) as failure:
                call(b"", timeout=5)
            assert failure.value.code() == grpc.StatusCode.UNIMPLEMENTED, method
        stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
        assert stub.ServerLive(v2.ServerLiveRequest(), timeout=5).live is True  # still serving
