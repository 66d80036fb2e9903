"""Result and description types both ends use, each mirroring one proto message field for field.

The server's data plane returns these; its servicer encodes them with ``to_proto``; the client
decodes responses with ``from_proto``. Arrays are numpy; the k-NN options a response reports and
a model's defaults are a :class:`~knnserve_client.wire.query.KnnQuery`. A test checks every type
against its message's descriptor, so a field added to the proto and not mapped here fails.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from knnserve_client.wire.enums import DTYPES, HEADS, TIE_BREAKS, WEIGHTS
from knnserve_client.wire.query import KnnQuery, query_fields
from knnserve_client.wire.tensors import from_tensor, to_tensor
from knnserve_client.wire.v1 import knnserve_pb2 as pb

_QUERY_ENUMS = {"weights": WEIGHTS, "tie_break": TIE_BREAKS}


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


def _array(tensor: Any, field: str) -> np.ndarray:
    # Copy: a decoded tensor shares the (immutable) message bytes and would be read-only.
    return from_tensor(tensor, field=field).copy()


class _Tensors:
    """Base of the types whose fields are all tensors of one message: encoded, decoded and joined field by field."""

    PROTO: Any  # the message type
    FIELDS: tuple[str, ...]  # the dataclass's fields, in order

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.FIELDS = tuple(cls.__annotations__)  # its dataclass fields: PROTO is assigned, not annotated

    def to_proto(self) -> Any:
        """The message."""
        return self.PROTO(**{name: to_tensor(getattr(self, name)) for name in self.FIELDS})

    @classmethod
    def from_proto(cls, message: Any, field: str) -> Any:
        """Decode the message (``field`` names it in errors, e.g. ``knn.predictions``)."""
        return cls(**{f.name: _array(getattr(message, f.name), f"{field}.{f.name}") for f in fields(cls)})  # type: ignore[arg-type]

    @classmethod
    def concat(cls, parts: list[Any]) -> Any:
        """Join results of consecutive row chunks, in order."""
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class HeadResult(_Tensors):
    """One head's answer for n rows: predictions (n,) int64 and the top classes (n, top_n) int32 with float32 scores."""

    PROTO = pb.HeadResult
    predictions: np.ndarray
    top_classes: np.ndarray
    top_scores: np.ndarray


@dataclass(frozen=True, eq=False)
class Neighbors(_Tensors):
    """The k nearest training vectors of n rows: ids int64, true-scale distances float32 and labels int64, each (n, k)."""

    PROTO = pb.Neighbors
    ids: np.ndarray
    distances: np.ndarray
    labels: np.ndarray


def head_classes_from(messages: Any) -> tuple[tuple[str, int], ...]:
    """(head name, classes known) pairs from repeated HeadClasses."""
    return tuple((HEADS.from_wire(m.head) or "", int(m.known)) for m in messages)


def _join(values: list[Any], joiner: Any) -> Any:
    return None if values[0] is None else joiner(values)


@dataclass(frozen=True, eq=False)
class ClassifyResult:
    """The answer to one Classify request; ``knn``/``linear`` are None when that head did not run.

    ``params`` are the k-NN options the request ran with, defaults filled in (None when the k-NN
    head did not run); ``tag`` is the request's tag, echoed.
    """

    model: str
    version: int
    knn: HeadResult | None
    linear: HeadResult | None
    neighbors: Neighbors | None
    params: KnnQuery | None
    tag: str = ""
    # Per head that ran: how many classes it knows (class indices 0 .. known - 1).
    head_classes: tuple[tuple[str, int], ...] = ()

    @property
    def predictions(self) -> np.ndarray:
        """Predictions of the k-NN head when it ran, else of the linear head."""
        head = self.knn if self.knn is not None else self.linear
        if head is None:
            raise ValueError("no head ran")
        return head.predictions

    def to_proto(self) -> pb.ClassifyResponse:
        """The ClassifyResponse message."""
        response = pb.ClassifyResponse(
            model=self.model, version=self.version, tag=self.tag,
            knn=self.knn.to_proto() if self.knn is not None else None,
            linear=self.linear.to_proto() if self.linear is not None else None,
            neighbors=self.neighbors.to_proto() if self.neighbors is not None else None,
        )
        if self.params is not None:
            query_into(response.params, self.params)
        for head, known in self.head_classes:
            response.head_classes.add(head=HEADS.to_wire(head), known=known)
        return response

    @classmethod
    def from_proto(cls, message: pb.ClassifyResponse) -> ClassifyResult:
        """Decode a ClassifyResponse."""
        return cls(
            model=message.model,
            version=message.version,
            knn=HeadResult.from_proto(message.knn, "knn") if message.HasField("knn") else None,
            linear=HeadResult.from_proto(message.linear, "linear") if message.HasField("linear") else None,
            neighbors=Neighbors.from_proto(message.neighbors, "neighbors") if message.HasField("neighbors") else None,
            params=query_from(message.params) if message.HasField("params") else None,
            tag=message.tag,
            head_classes=head_classes_from(message.head_classes),
        )

    @staticmethod
    def concat(parts: list[ClassifyResult]) -> ClassifyResult:
        """Join the results of consecutive row chunks of one input, in order."""
        first = parts[0]
        if len(parts) == 1:
            return first
        return ClassifyResult(
            model=first.model,
            version=first.version,
            knn=_join([p.knn for p in parts], HeadResult.concat),
            linear=_join([p.linear for p in parts], HeadResult.concat),
            neighbors=_join([p.neighbors for p in parts], Neighbors.concat),
            params=first.params,
            tag=first.tag,
            head_classes=first.head_classes,
        )


@dataclass(frozen=True, eq=False)
class SearchResult:
    """The answer to one Search request: the model and version that answered and each row's neighbors."""

    model: str
    version: int
    neighbors: Neighbors

    @property
    def ids(self) -> np.ndarray:
        """Training-vector ids (n, k) int64, -1 where missing."""
        return self.neighbors.ids

    @property
    def distances(self) -> np.ndarray:
        """Distances (n, k) float32 on the metric's true scale."""
        return self.neighbors.distances

    @property
    def labels(self) -> np.ndarray:
        """Class index of each neighbor (n, k) int64, -1 where missing."""
        return self.neighbors.labels

    def to_proto(self) -> pb.SearchResponse:
        """The SearchResponse message."""
        return pb.SearchResponse(model=self.model, version=self.version, neighbors=self.neighbors.to_proto())

    @classmethod
    def from_proto(cls, message: pb.SearchResponse) -> SearchResult:
        """Decode a SearchResponse."""
        return cls(model=message.model, version=message.version, neighbors=Neighbors.from_proto(message.neighbors, "neighbors"))

    @staticmethod
    def concat(parts: list[SearchResult]) -> SearchResult:
        """Join the results of consecutive row chunks of one input, in order."""
        neighbors = Neighbors.concat([p.neighbors for p in parts]) if len(parts) > 1 else parts[0].neighbors
        return SearchResult(model=parts[0].model, version=parts[0].version, neighbors=neighbors)


@dataclass(frozen=True)
class IndexInfo:
    """The FAISS index behind a served model (see the IndexInfo message for each field)."""

    spec: str
    factory: str
    metric: str
    kind: str
    ntotal: int
    dim: int
    nlist: int | None

    def to_proto(self) -> pb.IndexInfo:
        """The IndexInfo message."""
        return pb.IndexInfo(spec=self.spec, factory=self.factory, metric=self.metric, kind=self.kind,
                            ntotal=self.ntotal, dim=self.dim, nlist=self.nlist)

    @classmethod
    def from_proto(cls, message: pb.IndexInfo) -> IndexInfo:
        """Decode an IndexInfo message."""
        return cls(spec=message.spec, factory=message.factory, metric=message.metric, kind=message.kind,
                   ntotal=message.ntotal, dim=message.dim, nlist=optional_field(message, "nlist"))


@dataclass(frozen=True)
class QueryLimits:
    """The bounds of every search knob of one model (see the QueryLimits message); None: the index has no such knob."""

    max_k: int
    max_nprobe: int | None
    max_ef_search: int | None

    def to_proto(self) -> pb.QueryLimits:
        """The QueryLimits message."""
        return pb.QueryLimits(max_k=self.max_k, max_nprobe=self.max_nprobe, max_ef_search=self.max_ef_search)

    @classmethod
    def from_proto(cls, message: pb.QueryLimits) -> QueryLimits:
        """Decode a QueryLimits message."""
        return cls(max_k=message.max_k, max_nprobe=optional_field(message, "max_nprobe"),
                   max_ef_search=optional_field(message, "max_ef_search"))


@dataclass(frozen=True)
class FeatureSpace:
    """The space a model works in (see the FeatureSpace message): what its index holds and its linear head reads.

    ``input`` is ``"pixels"`` or ``"extractor"``; ``extractor`` names the extractor (``cnn:small``,
    ``onnx:FILE``; empty for pixels) and ``embedding_dim`` its output size (0 for pixels);
    ``preprocessing`` is the k-NN preprocessing after it (``raw``, ``cosine``, ``pca:D[+cosine]``);
    ``dim`` the dimension of the indexed vectors, between which Search distances are measured.
    """

    input: str
    extractor: str
    embedding_dim: int
    preprocessing: str
    dim: int

    def to_proto(self) -> pb.FeatureSpace:
        """The FeatureSpace message."""
        return pb.FeatureSpace(input=self.input, extractor=self.extractor, embedding_dim=self.embedding_dim,
                               preprocessing=self.preprocessing, dim=self.dim)

    @classmethod
    def from_proto(cls, message: pb.FeatureSpace) -> FeatureSpace:
        """Decode a FeatureSpace message."""
        return cls(input=message.input, extractor=message.extractor, embedding_dim=message.embedding_dim,
                   preprocessing=message.preprocessing, dim=message.dim)


@dataclass(frozen=True)
class ModelInfo:
    """A served model at one version (see the ModelInfo message for each field)."""

    name: str
    version: int
    versions: tuple[int, ...]
    input_dtype: str
    input_shape: tuple[int, ...]
    dim: int
    class_names: tuple[str, ...]
    index: IndexInfo
    heads: tuple[str, ...]
    defaults: KnnQuery
    created_at: str
    dataset: str
    limits: QueryLimits
    features: FeatureSpace

    def to_proto(self) -> pb.ModelInfo:
        """The ModelInfo message."""
        message = pb.ModelInfo(
            name=self.name,
            version=self.version,
            versions=sorted(self.versions),
            input_dtype=DTYPES.to_wire(self.input_dtype),
            input_shape=list(self.input_shape),
            dim=self.dim,
            class_names=list(self.class_names),
            index=self.index.to_proto(),
            heads=[HEADS.to_wire(head) for head in self.heads],
            created_at=self.created_at,
            dataset=self.dataset,
            limits=self.limits.to_proto(),
            features=self.features.to_proto(),
        )
        query_into(message.defaults, self.defaults)
        return message

    @classmethod
    def from_proto(cls, message: pb.ModelInfo) -> ModelInfo:
        """Decode a ModelInfo message."""
        return cls(
            name=message.name,
            version=message.version,
            versions=tuple(message.versions),
            input_dtype=DTYPES.from_wire(message.input_dtype) or "",
            input_shape=tuple(message.input_shape),
            dim=message.dim,
            class_names=tuple(message.class_names),
            index=IndexInfo.from_proto(message.index),
            heads=tuple(HEADS.names.get(h, str(h)) for h in message.heads),  # a newer server's head: its number
            defaults=query_from(message.defaults),
            created_at=message.created_at,
            dataset=message.dataset,
            limits=QueryLimits.from_proto(message.limits),
            features=FeatureSpace.from_proto(message.features),
        )


__all__ = [
    "ClassifyResult",
    "FeatureSpace",
    "HeadResult",
    "IndexInfo",
    "ModelInfo",
    "Neighbors",
    "QueryLimits",
    "SearchResult",
    "optional_field",
    "query_from",
    "query_into",
]
