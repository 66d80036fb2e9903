"""Every RPC through a real server and channel, compared with the in-process model."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from knnserve.answers import top_classes
from knnserve_client.wire.v1 import knnserve_pb2 as pb
from knnserve_client.wire.v1 import knnserve_pb2_grpc
from knnserve_client import Client
from knnserve_client.wire.v1.tensors import to_tensor
from knnserve_client.wire.query import KnnQuery


def test_classify_matches_in_process_model(client: Client, models) -> None:
    x = models.blobs2.x_query
    result = client.classify("blobs", x)  # newest version: 2
    expected = models.blobs_v2.classify(x)
    assert result.model == "blobs" and result.version == 2
    np.testing.assert_array_equal(result.knn.predictions, expected.predictions)
    classes, scores = top_classes(expected.probabilities, 4)
    np.testing.assert_array_equal(result.knn.top_classes, classes)
    np.testing.assert_allclose(result.knn.top_scores, scores, rtol=1e-6)
    assert result.params.k == models.blobs_v2.defaults.k
    assert result.params.top_n == 4
    assert result.linear is None and result.neighbors is None


def test_classify_pinned_version_and_options(client: Client, models) -> None:
    x = models.blobs.x_query[:20]
    result = client.classify("blobs", x, version=1, k=7, weights="distance", tie_break="lowest", top_n=2, return_neighbors=True)
    expected = models.blobs_v1.classify(x, KnnQuery(k=7, weights="distance", tie_break="lowest"))
    assert result.version == 1
    np.testing.assert_array_equal(result.knn.predictions, expected.predictions)
    assert result.knn.top_classes.shape == (20, 2)
    np.testing.assert_array_equal(result.neighbors.ids, expected.ids)
    np.testing.assert_allclose(result.neighbors.distances, expected.distances, rtol=1e-6)
    np.testing.assert_array_equal(result.neighbors.labels, expected.neighbor_labels)
    assert (result.params.k, result.params.weights, result.params.tie_break) == (7, "distance", "lowest")


def test_top_n_zero_returns_predictions_only(client: Client, models) -> None:
    result = client.classify("blobs", models.blobs.x_query[:3], top_n=0)
    assert result.knn.top_classes.shape == (3, 0) and result.knn.top_scores.shape == (3, 0)
    assert result.knn.predictions.shape == (3,)


def test_uint8_images_and_flattened_rows_agree(client: Client, models) -> None:
    images = models.pix.x_query
    expected = models.pixels.classify(images).predictions
    np.testing.assert_array_equal(client.classify("pixels", images).knn.predictions, expected)
    np.testing.assert_array_equal(client.classify("pixels", images.reshape(len(images), -1)).knn.predictions, expected)
    # float32 pixels are accepted too and give the same answer
    np.testing.assert_array_equal(client.classify("pixels", images.astype(np.float32)).knn.predictions, expected)


def test_search_matches_in_process(client: Client, models) -> None:
    x = models.hnsw_data.x_query[:10]
    result = client.search("hnsw", x, k=4, ef_search=80)
    query = models.hnsw.resolve(KnnQuery(k=4, ef_search=80))
    distances, ids = models.hnsw.search(models.hnsw.prepare(x), query)
    np.testing.assert_array_equal(result.ids, ids)
    np.testing.assert_allclose(result.distances, distances, rtol=1e-6)
    np.testing.assert_array_equal(result.labels, models.hnsw.labels[ids])
    assert result.model == "hnsw" and result.version == 1


def test_list_models_and_get_model(client: Client, models) -> None:
    listed = client.models()
    assert [m.name for m in listed] == ["blobs", "hnsw", "pixels"]
    blobs = listed[0]
    assert blobs.version == 2 and blobs.versions == (1, 2)
    assert blobs.input_dtype == "float32" and blobs.input_shape == (16,) and blobs.dim == 16
    assert blobs.class_names == models.blobs_v2.class_names
    assert blobs.index.factory == "Flat" and blobs.index.metric == "l2" and blobs.index.ntotal == 400
    assert blobs.heads == ("knn",)
    assert blobs.defaults.k == models.blobs_v2.defaults.k
    one = client.model("blobs", 1)
    assert one.version == 1 and one.versions == (1, 2)
    pixels = client.model("pixels")
    assert pixels.input_dtype == "uint8" and pixels.input_shape == (6, 6) and pixels.dim == 36
    hnsw = client.model("hnsw")
    assert hnsw.index.kind == "hnsw" and hnsw.defaults.ef_search == models.hnsw.defaults.ef_search
    limits = client.limits()
    assert limits.max_rows_per_request > 0 and limits.max_message_bytes > 0


def test_request_id_is_echoed_or_made(shared_server) -> None:
    _, target = shared_server
    with grpc.insecure_channel(target) as channel:
        stub = knnserve_pb2_grpc.KnnServeStub(channel)
        _, call = stub.ListModels.with_call(pb.ListModelsRequest(), metadata=(("x-request-id", "abc-123"),))
        assert ("x-request-id", "abc-123") in tuple(call.trailing_metadata())
        _, call = stub.ListModels.with_call(pb.ListModelsRequest())
        made = dict(call.trailing_metadata())["x-request-id"]
        assert len(made) == 32
        with pytest.raises(grpc.RpcError) as failure:
            stub.GetModel(pb.GetModelRequest(name="nope"), metadata=(("x-request-id", "req-9"),))
        assert ("x-request-id", "req-9") in tuple(failure.value.trailing_metadata())


def test_raw_tensor_contract(shared_server, models) -> None:
    """A client in another language builds the bytes by hand: little-endian, row-major."""
    _, target = shared_server
    x = models.blobs.x_query[:2]
    request = pb.ClassifyRequest(model="blobs", version=1, k=3)
    request.inputs.dtype = 2  # DTYPE_FLOAT32
    request.inputs.shape.extend([2, 16])
    request.inputs.data = x.astype("<f4").tobytes(order="C")
    with grpc.insecure_channel(target) as channel:
        response = knnserve_pb2_grpc.KnnServeStub(channel).Classify(request)
    predictions = np.frombuffer(response.knn.predictions.data, dtype="<i8")
    np.testing.assert_array_equal(predictions, models.blobs_v1.classify(x, KnnQuery(k=3)).predictions)
    assert list(response.knn.predictions.shape) == [2]
    assert to_tensor(x).data == request.inputs.data


def test_kernel_faiss_turns_the_search_kernels_off_and_answers_the_same(start_server, models) -> None:  # type: ignore[no-untyped-def]
    """serve --kernel faiss: every loaded model searches with FAISS only (no private copy of its vectors)."""
    auto, auto_target = start_server()
    faiss_only, faiss_target = start_server(kernel="faiss")
    for name, versions in faiss_only.registry.snapshot().items():
        for version, served in versions.items():
            assert served.model.kernel_plan.name == "faiss" and served.model.kernel_plan.reason == "kernels turned off"
            assert auto.registry.snapshot()[name][version].model.kernel_plan.reason != "kernels turned off"
    x = models.pix.x_query[:40]
    with Client(auto_target, timeout=10) as a, Client(faiss_target, timeout=10) as f:
        np.testing.assert_array_equal(a.classify("pixels", x).predictions, f.classify("pixels", x).predictions)
