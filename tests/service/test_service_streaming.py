"""ClassifyStream: order kept, results equal to in-process, failure ends the stream after earlier answers."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from knnserve_client.wire.v1 import knnserve_pb2 as pb
from knnserve_client.wire.v1 import knnserve_pb2_grpc
from knnserve_client import Client, InvalidArgumentError
from knnserve_client.wire.v1.tensors import from_tensor, to_tensor
from knnserve_client.wire.query import KnnQuery


def test_classify_batches_in_order(client: Client, models) -> None:
    x = models.blobs.x_query
    batches = [x[:1], x[1:20], x[20:21], x[21:64]]
    results = list(client.classify_batches("blobs", batches, version=1, k=3))
    assert len(results) == 4
    expected = models.blobs_v1.classify(x, KnnQuery(k=3)).predictions
    np.testing.assert_array_equal(np.concatenate([r.knn.predictions for r in results]), expected)
    assert all(r.version == 1 for r in results)


def test_stream_splits_batches_over_the_row_limit(start_server, models) -> None:
    _, target = start_server(max_rows_per_request=5)
    x = models.pix.x_query
    with Client(target) as client:
        results = list(client.classify_batches("pixels", [x[:12], x[12:13], x[13:]]))
    assert [len(r.knn.predictions) for r in results] == [12, 1, 19]
    np.testing.assert_array_equal(
        np.concatenate([r.knn.predictions for r in results]), models.pixels.classify(x).predictions
    )


def test_stream_tags_echo_and_error_ends_stream(shared_server, models) -> None:
    _, target = shared_server
    x = models.blobs.x_query

    def requests():  # type: ignore[no-untyped-def]
        for i in range(3):
            yield pb.ClassifyRequest(model="blobs", version=1, inputs=to_tensor(x[i * 4 : i * 4 + 4]), tag=f"t{i}")
        yield pb.ClassifyRequest(model="blobs", inputs=to_tensor(x[:2, :3]), tag="bad")
        yield pb.ClassifyRequest(model="blobs", inputs=to_tensor(x[:2]), tag="never")

    received = []
    with grpc.insecure_channel(target) as channel:
        stream = knnserve_pb2_grpc.KnnServeStub(channel).ClassifyStream(requests(), timeout=10)
        with pytest.raises(grpc.RpcError) as failure:
            for response in stream:
                received.append(response)
    assert [r.tag for r in received] == ["t0", "t1", "t2"]
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "inputs.shape" in failure.value.details()
    expected = models.blobs_v1.classify(x[:12]).predictions
    np.testing.assert_array_equal(np.concatenate([from_tensor(r.knn.predictions) for r in received]), expected)


def test_client_stream_error_type(client: Client, models) -> None:
    x = models.blobs.x_query
    with pytest.raises(InvalidArgumentError):
        list(client.classify_batches("blobs", [x[:2], x[:2, :5]]))
