"""Every error case through a real server: the status code, a message naming the field, and the
server still serving afterwards."""

from __future__ import annotations

import logging

import grpc
import numpy as np
import pytest

from knnserve.model import KNNModel
from knnserve_client.wire.status import GENERIC_INTERNAL_MESSAGE
from knnserve_client.wire.v1 import knnserve_pb2 as pb
from knnserve_client.wire.v1 import knnserve_pb2_grpc
from knnserve_client.wire.v1 import tensor_pb2
from knnserve_client import Client, InvalidArgumentError, NotFoundError, ServerError
from knnserve_client.wire.v1.tensors import to_tensor

F32 = tensor_pb2.DTYPE_FLOAT32


def rows(n: int = 2, d: int = 16, dtype: str = "float32") -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, d)).astype(dtype)


def request(**fields: object) -> pb.ClassifyRequest:
    message = pb.ClassifyRequest(model="blobs")
    message.inputs.CopyFrom(to_tensor(rows()))
    for key, value in fields.items():
        if key == "inputs":
            message.inputs.CopyFrom(value)  # type: ignore[arg-type]
        elif key == "heads":
            message.heads.extend(value)  # type: ignore[arg-type]
        else:
            setattr(message, key, value)
    return message


def nan_rows() -> tensor_pb2.Tensor:
    x = rows()
    x[1, 3] = np.nan
    return to_tensor(x)


CASES = [
    ("wrong dimension", request(inputs=to_tensor(rows(d=15))), grpc.StatusCode.INVALID_ARGUMENT, "inputs.shape: expected (n, 16)"),
    ("3-d rows of the wrong shape", request(inputs=to_tensor(rows(d=16).reshape(2, 4, 4))), grpc.StatusCode.INVALID_ARGUMENT, "inputs.shape"),
    ("wrong dtype", request(inputs=to_tensor(rows().astype(np.int32))), grpc.StatusCode.INVALID_ARGUMENT, "inputs.dtype: expected DTYPE_UINT8 or DTYPE_FLOAT32, got DTYPE_INT32"),
    ("unset dtype", request(inputs=tensor_pb2.Tensor(shape=[2, 16], data=bytes(128))), grpc.StatusCode.INVALID_ARGUMENT, "got DTYPE_UNSPECIFIED"),
    ("missing inputs", pb.ClassifyRequest(model="blobs"), grpc.StatusCode.INVALID_ARGUMENT, "inputs.dtype"),
    ("byte length", request(inputs=tensor_pb2.Tensor(dtype=F32, shape=[2, 16], data=bytes(127))), grpc.StatusCode.INVALID_ARGUMENT, "inputs.data: expected 128 bytes"),
    ("negative shape", request(inputs=tensor_pb2.Tensor(dtype=F32, shape=[-2, 16], data=b"")), grpc.StatusCode.INVALID_ARGUMENT, "inputs.shape: expected sizes >= 0"),
    ("scalar", request(inputs=tensor_pb2.Tensor(dtype=F32, shape=[], data=bytes(4))), grpc.StatusCode.INVALID_ARGUMENT, "inputs.shape"),
    ("NaN", request(inputs=nan_rows()), grpc.StatusCode.INVALID_ARGUMENT, "inputs: expected finite values"),
    ("empty batch", request(inputs=to_tensor(rows(n=0))), grpc.StatusCode.INVALID_ARGUMENT, "inputs.shape: expected at least one row"),
    ("k = 0", request(k=0), grpc.StatusCode.INVALID_ARGUMENT, "k: expected an integer >= 1, got 0"),
    ("k > ntotal", request(k=401), grpc.StatusCode.INVALID_ARGUMENT, "k: expected an integer between 1 and 400"),
    ("nprobe on a flat index", request(nprobe=4), grpc.StatusCode.INVALID_ARGUMENT, "nprobe"),
    ("ef_search on a flat index", request(ef_search=4), grpc.StatusCode.INVALID_ARGUMENT, "ef_search"),
    ("unknown weights enum", request(weights=9), grpc.StatusCode.INVALID_ARGUMENT, "weights: expected one of WEIGHTING_UNIFORM"),
    ("top_n too large", request(top_n=5), grpc.StatusCode.INVALID_ARGUMENT, "top_n: expected an integer between 0 and 4"),
    ("linear head on a k-NN-only model", request(heads=[pb.HEAD_LINEAR]), grpc.StatusCode.INVALID_ARGUMENT, "heads: expected a subset of knn"),
    ("empty model name", request(model=""), grpc.StatusCode.INVALID_ARGUMENT, "model: expected a model name"),
    ("version 0", request(version=0), grpc.StatusCode.INVALID_ARGUMENT, "version: expected a positive integer"),
    ("unknown model", request(model="nope"), grpc.StatusCode.NOT_FOUND, "model 'nope' is not served (served models: blobs, hnsw, pixels)"),
    ("unknown version", request(version=7), grpc.StatusCode.NOT_FOUND, "model 'blobs' has no version 7 (loaded versions: 1, 2)"),
]


@pytest.mark.parametrize(("name", "message", "code", "text"), CASES, ids=[c[0] for c in CASES])
def test_classify_errors(shared_server, name: str, message: pb.ClassifyRequest, code: grpc.StatusCode, text: str) -> None:
    _, target = shared_server
    with grpc.insecure_channel(target) as channel:
        stub = knnserve_pb2_grpc.KnnServeStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            stub.Classify(message, timeout=10)
        assert failure.value.code() == code
        assert text in failure.value.details()
        # the same request through Search fails the same way where Search has the field
        if message.HasField("weights") or message.HasField("top_n") or message.heads:
            return
        search = pb.SearchRequest(model=message.model, inputs=message.inputs)
        for field in ("version", "k", "nprobe", "ef_search"):
            if message.HasField(field):
                setattr(search, field, getattr(message, field))
        with pytest.raises(grpc.RpcError) as failure:
            stub.Search(search, timeout=10)
        assert failure.value.code() == code
        # and the server keeps serving
        assert stub.Classify(request(), timeout=10).model == "blobs"


def test_get_model_errors(client: Client) -> None:
    with pytest.raises(NotFoundError) as failure:
        client.model("blobs", 9)
    assert failure.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(InvalidArgumentError, match="name: expected a model name"):
        client.model("")


def test_client_side_errors_keep_the_status(client: Client) -> None:
    with pytest.raises(InvalidArgumentError) as failure:
        client.classify("blobs", rows(d=3))
    assert failure.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.request_id  # the server's id, to find the call in its log
    assert isinstance(failure.value, ValueError)


def test_oversized_message_is_resource_exhausted(start_server) -> None:
    _, target = start_server(max_message_bytes=4096)
    with grpc.insecure_channel(target) as channel:
        stub = knnserve_pb2_grpc.KnnServeStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            stub.Classify(request(inputs=to_tensor(rows(n=100))), timeout=10)
        assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub.Classify(request(), timeout=10).model == "blobs"


def test_too_many_rows_and_neighbors(start_server) -> None:
    _, target = start_server(max_rows_per_request=8, max_neighbors_per_request=20)
    with grpc.insecure_channel(target) as channel:
        stub = knnserve_pb2_grpc.KnnServeStub(channel)
        with pytest.raises(grpc.RpcError) as failure:
            stub.Classify(request(inputs=to_tensor(rows(n=9))), timeout=10)
        assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "9 rows exceed the limit of 8 rows per request" in failure.value.details()
        with pytest.raises(grpc.RpcError) as failure:
            stub.Search(pb.SearchRequest(model="blobs", inputs=to_tensor(rows(n=3)), k=7), timeout=10)
        assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "21 neighbors exceed the limit of 20" in failure.value.details()


def test_unexpected_error_is_internal_with_generic_message(start_server, caplog: pytest.LogCaptureFixture) -> None:
    def broken_loader(path):  # type: ignore[no-untyped-def]
        model = KNNModel.load(path)
        if model.manifest.name == "pixels":
            def explode(*args: object, **kwargs: object) -> None:
                raise RuntimeError("secret internal detail")
            model.search_features = explode  # type: ignore[method-assign]  # what the data plane's batcher calls
        return model

    _, target = start_server(loader=broken_loader)
    with Client(target, timeout=10) as client:
        with caplog.at_level(logging.ERROR, logger="knnserve.service.rpc"):
            with pytest.raises(ServerError) as failure:
                client.classify("pixels", np.zeros((2, 6, 6), np.uint8))
        assert failure.value.code == grpc.StatusCode.INTERNAL
        assert failure.value.details == GENERIC_INTERNAL_MESSAGE
        assert "secret" not in str(failure.value)
        logged = [r for r in caplog.records if r.name == "knnserve.service.rpc" and r.exc_info]
        assert logged and "secret internal detail" in str(logged[0].exc_info[1])
        assert getattr(logged[0], "request_id") == failure.value.request_id
        # still serving, the broken model included (the batcher thread survived)
        assert client.classify("blobs", rows()).version == 2
        with pytest.raises(ServerError):
            client.classify("pixels", np.zeros((1, 6, 6), np.uint8))


def test_client_rejects_unsendable_dtype_locally(client: Client) -> None:
    with pytest.raises(ValueError, match="x.dtype"):
        client.classify("blobs", np.zeros((2, 16), dtype=np.int64))
    with pytest.raises(InvalidArgumentError, match="k: expected an integer between 1 and 400"):
        client.classify("blobs", rows(), k=10_000)
