"""Small immutable result types the client returns, built from the wire messages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knnserve.v1 import knnserve_pb2 as pb
from knnserve.v1 import tensor_pb2
from knnserve_client.tensors import dtype_name, from_tensor

WEIGHTS = {pb.WEIGHTING_UNIFORM: "uniform", pb.WEIGHTING_DISTANCE: "distance"}
TIE_BREAKS = {pb.TIE_BREAK_NEAREST: "nearest", pb.TIE_BREAK_LOWEST: "lowest"}
HEADS = {pb.HEAD_KNN: "knn", pb.HEAD_LINEAR: "linear"}


def _array(tensor: tensor_pb2.Tensor, field: str) -> np.ndarray:
    # Copy: a decoded tensor shares the (immutable) message bytes and would be read-only.
    return from_tensor(tensor, field=field).copy()


@dataclass(frozen=True, eq=False)
class HeadResult:
    """One head's answer for n rows: predictions (n,) int64 and the top classes (n, top_n) with scores."""

    predictions: np.ndarray
    top_classes: np.ndarray
    top_scores: np.ndarray

    @classmethod
    def from_proto(cls, message: pb.HeadResult, field: str) -> HeadResult:
        """Decode a HeadResult message."""
        return cls(
            predictions=_array(message.predictions, f"{field}.predictions"),
            top_classes=_array(message.top_classes, f"{field}.top_classes"),
            top_scores=_array(message.top_scores, f"{field}.top_scores"),
        )

    @staticmethod
    def concat(parts: list[HeadResult]) -> HeadResult:
        """Join results of consecutive row chunks, in order."""
        return HeadResult(
            predictions=np.concatenate([p.predictions for p in parts]),
            top_classes=np.concatenate([p.top_classes for p in parts]),
            top_scores=np.concatenate([p.top_scores for p in parts]),
        )


@dataclass(frozen=True, eq=False)
class Neighbors:
    """The k nearest training vectors of n rows: ids, true-scale distances and labels, each (n, k)."""

    ids: np.ndarray
    distances: np.ndarray
    labels: np.ndarray

    @classmethod
    def from_proto(cls, message: pb.Neighbors) -> Neighbors:
        """Decode a Neighbors message."""
        return cls(
            ids=_array(message.ids, "neighbors.ids"),
            distances=_array(message.distances, "neighbors.distances"),
            labels=_array(message.labels, "neighbors.labels"),
        )

    @staticmethod
    def concat(parts: list[Neighbors]) -> Neighbors:
        """Join results of consecutive row chunks, in order."""
        return Neighbors(
            ids=np.concatenate([p.ids for p in parts]),
            distances=np.concatenate([p.distances for p in parts]),
            labels=np.concatenate([p.labels for p in parts]),
        )


@dataclass(frozen=True)
class EffectiveParams:
    """The k-NN parameters a request ran with, defaults filled in."""

    k: int
    weights: str
    tie_break: str
    nprobe: int | None
    ef_search: int | None
    top_n: int

    @classmethod
    def from_proto(cls, message: pb.EffectiveParams) -> EffectiveParams:
        """Decode an EffectiveParams message."""
        return cls(
            k=message.k,
            weights=WEIGHTS.get(message.weights, ""),
            tie_break=TIE_BREAKS.get(message.tie_break, ""),
            nprobe=message.nprobe if message.HasField("nprobe") else None,
            ef_search=message.ef_search if message.HasField("ef_search") else None,
            top_n=message.top_n,
        )


@dataclass(frozen=True, eq=False)
class ClassifyResult:
    """What :meth:`Client.classify` returns; ``knn``/``linear`` are None when that head did not run."""

    model: str
    version: int
    knn: HeadResult | None
    linear: HeadResult | None
    neighbors: Neighbors | None
    params: EffectiveParams | None

    @property
    def predictions(self) -> np.ndarray:
        """Predictions of the k-NN head when it ran, else of the linear head."""
        head = self.knn if self.knn is not None else self.linear
        if head is None:
            raise ValueError("no head ran")
        return head.predictions

    @classmethod
    def from_proto(cls, message: pb.ClassifyResponse) -> ClassifyResult:
        """Decode a ClassifyResponse."""
        return cls(
            model=message.model,
            version=message.version,
            knn=HeadResult.from_proto(message.knn, "knn") if message.HasField("knn") else None,
            linear=HeadResult.from_proto(message.linear, "linear") if message.HasField("linear") else None,
            neighbors=Neighbors.from_proto(message.neighbors) if message.HasField("neighbors") else None,
            params=EffectiveParams.from_proto(message.params) if message.HasField("params") else None,
        )

    @staticmethod
    def concat(parts: list[ClassifyResult]) -> ClassifyResult:
        """Join the results of consecutive row chunks of one input, in order."""
        first = parts[0]
        if len(parts) == 1:
            return first

        def join(values: list, joiner):  # type: ignore[no-untyped-def]
            return None if values[0] is None else joiner(values)

        return ClassifyResult(
            model=first.model,
            version=first.version,
            knn=join([p.knn for p in parts], HeadResult.concat),
            linear=join([p.linear for p in parts], HeadResult.concat),
            neighbors=join([p.neighbors for p in parts], Neighbors.concat),
            params=first.params,
        )


@dataclass(frozen=True, eq=False)
class SearchResult:
    """What :meth:`Client.search` returns."""

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
        """Class index of each neighbour (n, k) int64, -1 where missing."""
        return self.neighbors.labels


@dataclass(frozen=True)
class IndexInfo:
    """The FAISS index behind a model."""

    spec: str
    factory: str
    metric: str
    kind: str
    ntotal: int
    dim: int
    nlist: int | None


@dataclass(frozen=True)
class ModelDefaults:
    """Values a request falls back to."""

    k: int
    weights: str
    tie_break: str
    nprobe: int | None
    ef_search: int | None


@dataclass(frozen=True)
class ModelInfo:
    """A served model at one version."""

    name: str
    version: int
    versions: tuple[int, ...]
    input_dtype: str
    input_shape: tuple[int, ...]
    dim: int
    class_names: tuple[str, ...]
    index: IndexInfo
    heads: tuple[str, ...]
    defaults: ModelDefaults
    created_at: str
    dataset: str

    @classmethod
    def from_proto(cls, message: pb.ModelInfo) -> ModelInfo:
        """Decode a ModelInfo message."""
        index, defaults = message.index, message.defaults
        return cls(
            name=message.name,
            version=message.version,
            versions=tuple(message.versions),
            input_dtype=dtype_name(message.input_dtype).removeprefix("DTYPE_").lower(),
            input_shape=tuple(message.input_shape),
            dim=message.dim,
            class_names=tuple(message.class_names),
            index=IndexInfo(
                spec=index.spec,
                factory=index.factory,
                metric=index.metric,
                kind=index.kind,
                ntotal=index.ntotal,
                dim=index.dim,
                nlist=index.nlist if index.HasField("nlist") else None,
            ),
            heads=tuple(HEADS.get(h, str(h)) for h in message.heads),
            defaults=ModelDefaults(
                k=defaults.k,
                weights=WEIGHTS.get(defaults.weights, ""),
                tie_break=TIE_BREAKS.get(defaults.tie_break, ""),
                nprobe=defaults.nprobe if defaults.HasField("nprobe") else None,
                ef_search=defaults.ef_search if defaults.HasField("ef_search") else None,
            ),
            created_at=message.created_at,
            dataset=message.dataset,
        )


@dataclass(frozen=True)
class ServerLimits:
    """Per-request limits the server announced."""

    max_message_bytes: int
    max_rows_per_request: int


__all__ = [
    "ClassifyResult",
    "EffectiveParams",
    "HeadResult",
    "IndexInfo",
    "ModelDefaults",
    "ModelInfo",
    "Neighbors",
    "SearchResult",
    "ServerLimits",
]
