"""The wire's Python types mirror the proto messages field for field, so a field added to the proto and
not mapped fails here; and each type survives a round trip through its message."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from knnserve_client.wire import examples, messages
from knnserve_client.wire.limits import ServerLimits
from knnserve_client.wire.query import KnnQuery, query_fields
from knnserve_client.wire.v1 import knnserve_pb2 as pb

# Python type -> the message it mirrors; every field of one is a field of the other.
MIRRORS = {
    messages.HeadResult: pb.HeadResult,
    messages.Neighbors: pb.Neighbors,
    messages.ClassifyResult: pb.ClassifyResponse,
    messages.SearchResult: pb.SearchResponse,
    messages.IndexInfo: pb.IndexInfo,
    messages.ModelInfo: pb.ModelInfo,
    messages.QueryLimits: pb.QueryLimits,
    messages.FeatureSpace: pb.FeatureSpace,
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
    head = messages.HeadResult(np.array([1, 0], np.int64), np.array([[1, 0], [0, 2]], np.int32), rng.random((2, 2), np.float32))
    neighbors = messages.Neighbors(np.array([[3, -1], [4, 5]], np.int64), rng.random((2, 2), np.float32), np.array([[1, -1], [0, 0]], np.int64))
    query = KnnQuery(k=2, weights="distance", tie_break="lowest", nprobe=4, ef_search=None, top_n=0)
    result = messages.ClassifyResult("m", 3, head, None, neighbors, query, tag="t")
    back = messages.ClassifyResult.from_proto(result.to_proto())
    assert (back.model, back.version, back.tag, back.params, back.linear) == ("m", 3, "t", query, None)
    for name in ("predictions", "top_classes", "top_scores"):
        np.testing.assert_array_equal(getattr(back.knn, name), getattr(head, name))
    np.testing.assert_array_equal(back.neighbors.ids, neighbors.ids)


def test_model_info_round_trip() -> None:
    info = messages.ModelInfo(
        name="m", version=2, versions=(1, 2), input_dtype="uint8", input_shape=(28, 28), dim=784,
        class_names=("a", "b"), index=messages.IndexInfo("hnsw", "HNSW32", "l2", "hnsw", 60000, 784, None),
        heads=("knn", "linear"), defaults=KnnQuery(k=5, weights="uniform", tie_break="nearest", ef_search=64),
        created_at="2026-12-01T00:00:00+00:00", dataset="fashion-mnist",
        limits=messages.QueryLimits(max_k=60000, max_nprobe=None, max_ef_search=4096),
        features=messages.FeatureSpace(input="extractor", extractor="cnn:small", embedding_dim=128,
                                       preprocessing="cosine", dim=128),
    )
    assert messages.ModelInfo.from_proto(info.to_proto()) == info
    limits = ServerLimits(4096, 10, 1000, 512)
    assert ServerLimits.from_proto(limits.to_proto()) == limits
