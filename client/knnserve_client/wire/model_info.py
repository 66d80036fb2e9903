"""What a served model is: its index, the bounds of its search knobs, its feature space (plain dataclasses).

Returned by the data plane for ListModels / GetModel and the Open Inference metadata, and by the
client after decoding; no protobuf or grpc here (``wire.v1.codec`` maps them to their messages).
"""

from __future__ import annotations

from dataclasses import dataclass

from knnserve_client.wire.query import KnnQuery


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


@dataclass(frozen=True)
class QueryLimits:
    """The bounds of every search knob of one model (see the QueryLimits message); None: the index has no such knob."""

    max_k: int
    max_nprobe: int | None
    max_ef_search: int | None


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


__all__ = ["FeatureSpace", "IndexInfo", "ModelInfo", "QueryLimits"]
