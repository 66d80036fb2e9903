"""Fuzzing the request path through a real server: random dtypes, shapes, byte lengths, option values and
bodies. Every answer is OK or a documented status code, never INTERNAL or UNKNOWN, and the server then
answers a good request."""

from __future__ import annotations

import grpc
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from knnserve_client.wire.v1.tensors import to_tensor
from knnserve_client.wire.v1 import knnserve_pb2 as pb
from knnserve_client.wire.v1 import knnserve_pb2_grpc
from knnserve_client.wire.v1 import tensor_pb2

DOCUMENTED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED}
UINT32 = st.integers(min_value=0, max_value=2**32 - 1)
SMALL = st.integers(min_value=0, max_value=40)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


ROW_SHAPES = {"blobs": [[16]], "hnsw": [[16]], "pixels": [[6, 6], [36]]}


def sometimes(draw: st.DrawFn, odds: int) -> bool:
    """True about once in ``odds`` draws."""
    return draw(st.integers(min_value=1, max_value=odds)) == 1


@st.composite
def tensors(draw: st.DrawFn, model: str = "blobs") -> tensor_pb2.Tensor:
    """Mostly tensors the model could take (right dtypes and row shape, random bytes, so NaN, infinities and
    huge values too), some wrong in one place, some wild."""
    if not sometimes(draw, 5):
        dtype = draw(st.sampled_from([tensor_pb2.DTYPE_UINT8, tensor_pb2.DTYPE_FLOAT32]))
        rows = draw(st.sampled_from(ROW_SHAPES.get(model, [[16]]) * 3 + [[15], [4, 4]]))
        shape = [draw(st.integers(min_value=0, max_value=6)), *rows]
        size = int(np.prod(shape)) * (1 if dtype == tensor_pb2.DTYPE_UINT8 else 4)
        data = draw(st.binary(min_size=size, max_size=size))
        if draw(st.integers(min_value=0, max_value=9)) == 0:  # one byte short or long
            data = data[:-1] if data and draw(st.booleans()) else data + b"\x00"
        return tensor_pb2.Tensor(dtype=dtype, shape=shape, data=data)
    dtype = draw(st.integers(min_value=0, max_value=6))
    shape = draw(st.lists(st.one_of(SMALL, st.integers(min_value=-3, max_value=2**63 - 1)), max_size=4))
    sizes = {0: 0, 1: 1, 2: 4, 3: 4, 4: 8}
    exact = int(np.prod([max(s, 0) for s in shape], dtype=object)) * sizes.get(dtype, 1) if shape else sizes.get(dtype, 1)
    length = draw(st.sampled_from([exact, exact + 1, max(exact - 1, 0), 0, 64])) if exact < 10**6 else draw(st.integers(0, 64))
    fill = draw(st.sampled_from([b"\x00", b"\xff", b"\x7f\x7f\xff\xff", b"\x00\x00\xc0\x7f"]))  # zeros, NaN-ish, huge, NaN
    return tensor_pb2.Tensor(dtype=dtype, shape=shape, data=(fill * (length // len(fill) + 1))[:length])


@st.composite
def classify_requests(draw: st.DrawFn) -> pb.ClassifyRequest:
    model = draw(st.sampled_from(["blobs", "hnsw", "pixels"] * 3 + ["", "nope"]))
    int32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
    heads = [] if not sometimes(draw, 3) else draw(st.lists(st.integers(min_value=0, max_value=2) if not sometimes(draw, 5) else int32,
                                                             max_size=3))
    request = pb.ClassifyRequest(model=model, inputs=draw(tensors(model)), heads=heads,
                                 return_neighbors=sometimes(draw, 3), tag=draw(st.text(max_size=8)))
    for field in ("version", "k", "weights", "tie_break", "nprobe", "ef_search", "top_n"):
        if not sometimes(draw, 3):
            continue  # a third of the options set, mostly to plausible values
        wild = sometimes(draw, 6)
        if field == "version":
            value = draw(st.integers(min_value=-(2**63), max_value=2**63 - 1) if wild else st.integers(min_value=1, max_value=2))
        elif field in ("weights", "tie_break"):  # open proto3 enums: any int32 travels
            value = draw(int32 if wild else st.integers(min_value=0, max_value=2))
        else:
            value = draw(UINT32 if wild else SMALL)
        setattr(request, field, value)
    return request


def _answer(call, request) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    try:
        call(request, timeout=30)
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        return error.code()


@FUZZ
@given(request=classify_requests())
def test_classify_and_search_answer_documented_codes(shared_server, request: pb.ClassifyRequest) -> None:
    with grpc.insecure_channel(shared_server[1]) as channel:
        stub = knnserve_pb2_grpc.KnnServeStub(channel)
        assert _answer(stub.Classify, request) in DOCUMENTED, request
        search = pb.SearchRequest(model=request.model, inputs=request.inputs)
        for field in ("version", "k", "nprobe", "ef_search"):
            if request.HasField(field):
                setattr(search, field, getattr(request, field))
        assert _answer(stub.Search, search) in DOCUMENTED, search


@FUZZ
@given(body=st.binary(max_size=200))
def test_arbitrary_bytes_answer_documented_codes(shared_server, body: bytes) -> None:
    with grpc.insecure_channel(shared_server[1]) as channel:
        call = channel.unary_unary("/knnserve.v1.KnnServe/Classify", request_serializer=lambda b: b,
                                   response_deserializer=pb.ClassifyResponse.FromString)
        assert _answer(call, body) in DOCUMENTED


def test_the_server_still_answers_a_good_request(shared_server, models) -> None:
    with grpc.insecure_channel(shared_server[1]) as channel:
        response = knnserve_pb2_grpc.KnnServeStub(channel).Classify(
            pb.ClassifyRequest(model="blobs", inputs=to_tensor(models.blobs.x_query[:3])), timeout=10)
    assert response.knn.predictions.shape == [3]
