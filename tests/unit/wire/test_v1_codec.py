"""The plain wire types mirror the knnserve.v1 messages field for field, so a field added to the proto and
not mapped fails here; every message has a decoder; and each type survives a round trip through the v1 codec."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from knnserve_client.wire import examples, model_info, results
from knnserve_client.wire.limits import ServerLimits
from knnserve_client.wire.query import KnnQuery, query_fields
from knnserve_client.wire.v1 import knnserve_pb2 as pb
from knnserve_client.wire.v1.codec import DECODERS, from_proto, to_proto

# Python type -> the message it mirrors; every field of one is a field of the other.
MIRRORS = {
    results.HeadResult: pb.HeadResult,
    results.Neighbors: pb.Neighbors,
    results.ClassifyResult: pb.ClassifyResponse,
    results.SearchResult: pb.SearchResponse,
    model_info.IndexInfo: pb.IndexInfo,
    model_info.ModelInfo: pb.ModelInfo,
    model_info.QueryLimits: pb.QueryLimits,
    model_info.FeatureSpace: pb.FeatureSpace,
    ServerLimits: pb.ServerLimits,
    KnnQuery: pb.EffectiveParams,
    examples.AddResult: pb.AddExamplesResponse,
    examples.RemoveResult: pb.RemoveExamplesResponse,
    examples.SnapshotResult: pb.SnapshotModelResponse,
    examples.OnlineInfo: pb.OnlineState,
}
# Messages that carry a KnnQuery (all of it, or the part that applies to them).
QUERY_CARRIERS = {pb.EffectiveParams: set(query_fields()), pb.ModelDefaults: set(query_fields()),
                  pb.ClassifyRequest: set(query_fields()), pb.SearchRequest: {"k", "nprobe", "ef_search"}}
# Request fields the client sets besides the query's.
REQUEST_FIELDS = {pb.ClassifyRequest: {"model", "version", "inputs", "heads", "return_neighbors", "tag"},
                  pb.SearchRequest: {"model", "version", "inputs"},
                  pb.GetModelRequest: {"name", "version"}, pb.ListModelsRequest: set(),
                  pb.AddExamplesRequest: {"model", "inputs", "labels", "request_id"},
                  pb.RemoveExamplesRequest: {"model", "ids", "request_id"}, pb.SnapshotModelRequest: {"model"}}
# Responses the client unpacks into the mirrored types (and the limits it caches).
RESPONSE_FIELDS = {pb.ListModelsResponse: {"models", "limits"}, pb.GetModelResponse: {"model", "limits", "online"},
                   pb.HeadClasses: {"head", "known"}}


def names(message: type) -> set[str]:
    return set(message.DESCRIPTOR.fields_by_name)


@pytest.mark.parametrize("python_type", list(MIRRORS), ids=lambda t: t.__name__)
def test_types_mirror_their_message(python_type: type) -> None:
    assert {f.name for f in dataclasses.fields(python_type)} == names(MIRRORS[python_type])


@pytest.mark.parametrize("python_type", [t for t in MIRRORS if t is not KnnQuery], ids=lambda t: t.__name__)
def test_every_type_has_one_encoder_and_one_decoder(python_type: type) -> None:
    message = MIRRORS[python_type]
    assert DECODERS[message][0] is python_type
    assert to_proto.dispatch(python_type) is not to_proto.dispatch(object)


def test_the_plain_types_load_no_protobuf() -> None:
    import subprocess
    import sys

    code = ("import sys; import knnserve_client.wire.results, knnserve_client.wire.model_info, knnserve_client.wire.limits; "
            "print('google.protobuf' in sys.modules, 'grpc' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split() == ["False", "False"]


@pytest.mark.parametrize("message", list(QUERY_CARRIERS), ids=lambda m: m.DESCRIPTOR.name)
def test_every_query_field_travels(message: type) -> None:
    assert QUERY_CARRIERS[message] <= names(message)


def test_every_message_of_the_contract_is_accounted_for() -> None:
    accounted = set(MIRRORS.values()) | set(QUERY_CARRIERS) | set(REQUEST_FIELDS) | set(RESPONSE_FIELDS)
    declared = {getattr(pb, name) for name in pb.DESCRIPTOR.message_types_by_name}
    assert declared == accounted
    for message, fields in REQUEST_FIELDS.items():
        assert names(message) == fields | QUERY_CARRIERS.get(message, set())
    for message, fields in RESPONSE_FIELDS.items():
        assert names(message) == fields


def test_classify_result_round_trip() -> None:
    rng = np.random.default_rng(0)
    head = results.HeadResult(np.array([1, 0], np.int64), np.array([[1, 0], [0, 2]], np.int32), rng.random((2, 2), np.float32))
    neighbors = results.Neighbors(np.array([[3, -1], [4, 5]], np.int64), rng.random((2, 2), np.float32), np.array([[1, -1], [0, 0]], np.int64))
    query = KnnQuery(k=2, weights="distance", tie_break="lowest", nprobe=4, ef_search=None, top_n=0)
    result = results.ClassifyResult("m", 3, head, None, neighbors, query, tag="t")
    back = from_proto(to_proto(result))
    assert (back.model, back.version, back.tag, back.params, back.linear) == ("m", 3, "t", query, None)
    for name in ("predictions", "top_classes", "top_scores"):
        np.testing.assert_array_equal(getattr(back.knn, name), getattr(head, name))
    np.testing.assert_array_equal(back.neighbors.ids, neighbors.ids)


def test_model_info_round_trip() -> None:
    info = model_info.ModelInfo(
        name="m", version=2, versions=(1, 2), input_dtype="uint8", input_shape=(28, 28), dim=784,
        class_names=("a", "b"), index=model_info.IndexInfo("hnsw", "HNSW32", "l2", "hnsw", 60000, 784, None),
        heads=("knn", "linear"), defaults=KnnQuery(k=5, weights="uniform", tie_break="nearest", ef_search=64),
        created_at="2026-12-01T00:00:00+00:00", dataset="fashion-mnist",
        limits=model_info.QueryLimits(max_k=60000, max_nprobe=None, max_ef_search=4096),
        features=model_info.FeatureSpace(input="extractor", extractor="cnn:small", embedding_dim=128,
                                       preprocessing="cosine", dim=128),
    )
    assert from_proto(to_proto(info)) == info
    limits = ServerLimits(4096, 10, 1000, 512)
    assert from_proto(to_proto(limits)) == limits
