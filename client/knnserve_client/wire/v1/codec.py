"""knnserve.v1 messages <-> the plain wire types: one function each way, for every type the protocol carries.

``to_proto(value)`` encodes a plain value (results, model descriptions, limits) as its message;
``from_proto(message)`` decodes a message into its plain type. The k-NN options travel as fields of
several messages (requests, ``EffectiveParams``, ``ModelDefaults``): ``query_into`` / ``query_from``.
A test checks each mapping against its message's descriptor, so a field added to the proto and not
mapped here fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from functools import singledispatch
from typing import Any

import numpy as np

from knnserve_client.wire.errors import InvalidInputError
from knnserve_client.wire.examples import AddResult, OnlineInfo, RemoveResult, SnapshotResult
from knnserve_client.wire.limits import DEFAULT_MAX_EF_SEARCH, ServerLimits
from knnserve_client.wire.model_info import FeatureSpace, IndexInfo, ModelInfo, QueryLimits
from knnserve_client.wire.query import KnnQuery, query_fields
from knnserve_client.wire.results import ClassifyResult, HeadResult, Neighbors, SearchResult
from knnserve_client.wire.v1 import knnserve_pb2 as pb
from knnserve_client.wire.v1.enums import DTYPE, HEAD, TIE_BREAK, WEIGHTING
from knnserve_client.wire.v1.tensors import from_tensor, to_tensor

_QUERY_ENUMS = {"weights": WEIGHTING, "tie_break": TIE_BREAK}


def optional_field(message: Any, name: str) -> Any:
    """The value of a proto3 field, or None when it is an unset ``optional`` field."""
    field = message.DESCRIPTOR.fields_by_name[name]
    if field.has_presence and not message.HasField(name):
        return None
    return getattr(message, name)


def query_into(message: Any, query: KnnQuery) -> Any:
    """Set the query's fields on a message that carries them (requests, EffectiveParams, ModelDefaults).

    Only fields the message has are written; unset query fields stay unset.
    """
    names = message.DESCRIPTOR.fields_by_name
    for name, value in query.items():
        if value is not None and name in names:
            setattr(message, name, _QUERY_ENUMS[name].to_wire(value) if name in _QUERY_ENUMS else value)
    return message


# Message descriptor -> its KnnQuery fields as (name, has presence, enum mapping or None), worked out
# once per message type: this runs on every request.
_QUERY_LAYOUTS: dict[Any, tuple[tuple[str, bool, Any], ...]] = {}


def _query_layout(descriptor: Any) -> tuple[tuple[str, bool, Any], ...]:
    layout = _QUERY_LAYOUTS.get(descriptor)
    if layout is None:
        names = query_fields()
        layout = tuple((name, field.has_presence, _QUERY_ENUMS.get(name))
                       for name, field in descriptor.fields_by_name.items() if name in names)
        _QUERY_LAYOUTS[descriptor] = layout
    return layout


def query_from(message: Any) -> KnnQuery:
    """The KnnQuery a message carries (enum 0 and unset optional fields are "unset")."""
    values: dict[str, Any] = {}
    for name, presence, enum in _query_layout(message.DESCRIPTOR):
        value = None if presence and not message.HasField(name) else getattr(message, name)
        if enum is not None:
            value = enum.from_wire(value)
        elif name == "k" and value == 0 and not presence:
            value = None  # a plain uint32 k (EffectiveParams, ModelDefaults) is 0 only when unset
        values[name] = value
    return KnnQuery(**values)


def version_from(message: Any) -> int | None:
    """The version a request names (None = the newest); versions are positive integers."""
    version = optional_field(message, "version")
    if version is not None and version < 1:
        raise InvalidInputError("version", "a positive integer, or unset for the newest", version)
    return version


def heads_from(request: pb.ClassifyRequest) -> tuple[str, ...]:
    """The heads a ClassifyRequest asks for, as names (empty: every head the model has)."""
    if any(number == pb.HEAD_UNSPECIFIED for number in request.heads):
        raise InvalidInputError("heads", "HEAD_KNN or HEAD_LINEAR", "HEAD_UNSPECIFIED")
    return tuple(HEAD.from_wire(number) or "" for number in request.heads)


def _head_classes_into(message: Any, pairs: tuple[tuple[str, int], ...]) -> None:
    for head, known in pairs:
        message.head_classes.add(head=HEAD.to_wire(head), known=known)


def _head_classes_from(messages: Any) -> tuple[tuple[str, int], ...]:
    return tuple((HEAD.from_wire(m.head) or "", int(m.known)) for m in messages)


# -- plain -> message ---------------------------------------------------------------------------


@singledispatch
def to_proto(value: Any) -> Any:
    """The knnserve.v1 message of a plain wire value."""
    raise TypeError(f"no knnserve.v1 message for {type(value).__name__}")


@to_proto.register
def _(value: HeadResult) -> pb.HeadResult:
    return pb.HeadResult(**{f.name: to_tensor(getattr(value, f.name)) for f in fields(value)})


@to_proto.register
def _(value: Neighbors) -> pb.Neighbors:
    return pb.Neighbors(**{f.name: to_tensor(getattr(value, f.name)) for f in fields(value)})


@to_proto.register
def _(value: ClassifyResult) -> pb.ClassifyResponse:
    response = pb.ClassifyResponse(
        model=value.model, version=value.version, tag=value.tag,
        knn=to_proto(value.knn) if value.knn is not None else None,
        linear=to_proto(value.linear) if value.linear is not None else None,
        neighbors=to_proto(value.neighbors) if value.neighbors is not None else None,
    )
    if value.params is not None:
        query_into(response.params, value.params)
    _head_classes_into(response, value.head_classes)
    return response


@to_proto.register
def _(value: SearchResult) -> pb.SearchResponse:
    return pb.SearchResponse(model=value.model, version=value.version, neighbors=to_proto(value.neighbors))


@to_proto.register
def _(value: IndexInfo) -> pb.IndexInfo:
    return pb.IndexInfo(spec=value.spec, factory=value.factory, metric=value.metric, kind=value.kind,
                        ntotal=value.ntotal, dim=value.dim, nlist=value.nlist)


@to_proto.register
def _(value: QueryLimits) -> pb.QueryLimits:
    return pb.QueryLimits(max_k=value.max_k, max_nprobe=value.max_nprobe, max_ef_search=value.max_ef_search)


@to_proto.register
def _(value: FeatureSpace) -> pb.FeatureSpace:
    return pb.FeatureSpace(input=value.input, extractor=value.extractor, embedding_dim=value.embedding_dim,
                           preprocessing=value.preprocessing, dim=value.dim)


@to_proto.register
def _(value: ModelInfo) -> pb.ModelInfo:
    message = pb.ModelInfo(
        name=value.name,
        version=value.version,
        versions=sorted(value.versions),
        input_dtype=DTYPE.to_wire(value.input_dtype),
        input_shape=list(value.input_shape),
        dim=value.dim,
        class_names=list(value.class_names),
        index=to_proto(value.index),
        heads=[HEAD.to_wire(head) for head in value.heads],
        created_at=value.created_at,
        dataset=value.dataset,
        limits=to_proto(value.limits),
        features=to_proto(value.features),
    )
    query_into(message.defaults, value.defaults)
    return message


@to_proto.register
def _(value: ServerLimits) -> pb.ServerLimits:
    return pb.ServerLimits(
        max_message_bytes=value.max_message_bytes,
        max_rows_per_request=value.max_rows_per_request,
        max_neighbors_per_request=value.max_neighbors_per_request,
        max_ef_search=value.max_ef_search,
    )


@to_proto.register
def _(value: AddResult) -> pb.AddExamplesResponse:
    return pb.AddExamplesResponse(model=value.model, version=value.version, ids=to_tensor(value.ids.astype(np.int64)),
                                  log_position=value.log_position, duplicate=value.duplicate)


@to_proto.register
def _(value: RemoveResult) -> pb.RemoveExamplesResponse:
    return pb.RemoveExamplesResponse(model=value.model, version=value.version, log_position=value.log_position,
                                     duplicate=value.duplicate)


@to_proto.register
def _(value: SnapshotResult) -> pb.SnapshotModelResponse:
    return pb.SnapshotModelResponse(model=value.model, version=value.version, previous_version=value.previous_version,
                                    ntotal=value.ntotal)


@to_proto.register
def _(value: OnlineInfo) -> pb.OnlineState:
    message = pb.OnlineState(writable=value.writable, added=value.added, removed=value.removed,
                             log_position=value.log_position, log_bytes=value.log_bytes,
                             max_log_bytes=value.max_log_bytes, max_rows_per_add=value.max_rows_per_add)
    _head_classes_into(message, value.head_classes)
    return message


# -- message -> plain ---------------------------------------------------------------------------


def _array(tensor: Any, field: str) -> np.ndarray:
    # Copy: a decoded tensor shares the (immutable) message bytes and would be read-only.
    return from_tensor(tensor, field=field).copy()


def _head(message: pb.HeadResult, field: str) -> HeadResult:
    return HeadResult(**{f.name: _array(getattr(message, f.name), f"{field}.{f.name}") for f in fields(HeadResult)})


def _neighbors(message: pb.Neighbors, field: str) -> Neighbors:
    return Neighbors(**{f.name: _array(getattr(message, f.name), f"{field}.{f.name}") for f in fields(Neighbors)})


def _classify(message: pb.ClassifyResponse, field: str) -> ClassifyResult:
    return ClassifyResult(
        model=message.model,
        version=message.version,
        knn=_head(message.knn, "knn") if message.HasField("knn") else None,
        linear=_head(message.linear, "linear") if message.HasField("linear") else None,
        neighbors=_neighbors(message.neighbors, "neighbors") if message.HasField("neighbors") else None,
        params=query_from(message.params) if message.HasField("params") else None,
        tag=message.tag,
        head_classes=_head_classes_from(message.head_classes),
    )


def _search(message: pb.SearchResponse, field: str) -> SearchResult:
    return SearchResult(model=message.model, version=message.version, neighbors=_neighbors(message.neighbors, "neighbors"))


def _index(message: pb.IndexInfo, field: str) -> IndexInfo:
    return IndexInfo(spec=message.spec, factory=message.factory, metric=message.metric, kind=message.kind,
                     ntotal=message.ntotal, dim=message.dim, nlist=optional_field(message, "nlist"))


def _query_limits(message: pb.QueryLimits, field: str) -> QueryLimits:
    return QueryLimits(max_k=message.max_k, max_nprobe=optional_field(message, "max_nprobe"),
                       max_ef_search=optional_field(message, "max_ef_search"))


def _features(message: pb.FeatureSpace, field: str) -> FeatureSpace:
    return FeatureSpace(input=message.input, extractor=message.extractor, embedding_dim=message.embedding_dim,
                        preprocessing=message.preprocessing, dim=message.dim)


def _model(message: pb.ModelInfo, field: str) -> ModelInfo:
    return ModelInfo(
        name=message.name,
        version=message.version,
        versions=tuple(message.versions),
        input_dtype=DTYPE.from_wire(message.input_dtype) or "",
        input_shape=tuple(message.input_shape),
        dim=message.dim,
        class_names=tuple(message.class_names),
        index=_index(message.index, "index"),
        heads=tuple(HEAD.names.get(h, str(h)) for h in message.heads),  # a newer server's head: its number
        defaults=query_from(message.defaults),
        created_at=message.created_at,
        dataset=message.dataset,
        limits=_query_limits(message.limits, "limits"),
        features=_features(message.features, "features"),
    )


def _server_limits(message: pb.ServerLimits, field: str) -> ServerLimits:
    return ServerLimits(
        max_message_bytes=message.max_message_bytes,
        max_rows_per_request=message.max_rows_per_request,
        max_neighbors_per_request=message.max_neighbors_per_request,
        max_ef_search=message.max_ef_search or DEFAULT_MAX_EF_SEARCH,  # 0: a server from before the field
    )


def _added(message: pb.AddExamplesResponse, field: str) -> AddResult:
    return AddResult(message.model, message.version, _array(message.ids, "ids"), message.log_position, message.duplicate)


def _removed(message: pb.RemoveExamplesResponse, field: str) -> RemoveResult:
    return RemoveResult(message.model, message.version, message.log_position, message.duplicate)


def _snapshot(message: pb.SnapshotModelResponse, field: str) -> SnapshotResult:
    return SnapshotResult(message.model, message.version, message.previous_version, message.ntotal)


def _online(message: pb.OnlineState, field: str) -> OnlineInfo:
    return OnlineInfo(message.writable, message.added, message.removed, message.log_position, message.log_bytes,
                      message.max_log_bytes, message.max_rows_per_add, _head_classes_from(message.head_classes))


# message type -> (its plain type, the decoder)
DECODERS: dict[type, tuple[type, Callable[[Any, str], Any]]] = {
    pb.HeadResult: (HeadResult, _head),
    pb.Neighbors: (Neighbors, _neighbors),
    pb.ClassifyResponse: (ClassifyResult, _classify),
    pb.SearchResponse: (SearchResult, _search),
    pb.IndexInfo: (IndexInfo, _index),
    pb.QueryLimits: (QueryLimits, _query_limits),
    pb.FeatureSpace: (FeatureSpace, _features),
    pb.ModelInfo: (ModelInfo, _model),
    pb.ServerLimits: (ServerLimits, _server_limits),
    pb.AddExamplesResponse: (AddResult, _added),
    pb.RemoveExamplesResponse: (RemoveResult, _removed),
    pb.SnapshotModelResponse: (SnapshotResult, _snapshot),
    pb.OnlineState: (OnlineInfo, _online),
}


def from_proto(message: Any, field: str = "") -> Any:
    """The plain wire value of a knnserve.v1 message (``field`` names it in errors, e.g. ``knn``)."""
    entry = DECODERS.get(type(message))
    if entry is None:
        raise TypeError(f"no plain wire type for the message {type(message).__name__}")
    return entry[1](message, field or message.DESCRIPTOR.name)


__all__ = ["DECODERS", "from_proto", "heads_from", "optional_field", "query_from", "query_into", "to_proto", "version_from"]
