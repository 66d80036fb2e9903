"""Wire messages <-> the numpy arguments and results of service/inference.py."""

from __future__ import annotations

import numpy as np

from knnserve.errors import InvalidInputError
from knnserve.index import nlist
from knnserve.service.inference import (
    ClassifyOutput,
    HeadOutput,
    KnnOptions,
    NeighborsOutput,
    check_rows,
    prepare_inputs,
    resolve_options,
)
from knnserve.service.registry import ServedModel
from knnserve.v1 import knnserve_pb2 as pb
from knnserve.v1 import tensor_pb2
from knnserve_client.tensors import INPUT_DTYPES, from_tensor, to_tensor

WEIGHTS = {pb.WEIGHTING_UNIFORM: "uniform", pb.WEIGHTING_DISTANCE: "distance"}
TIE_BREAKS = {pb.TIE_BREAK_NEAREST: "nearest", pb.TIE_BREAK_LOWEST: "lowest"}
HEADS = {pb.HEAD_KNN: "knn", pb.HEAD_LINEAR: "linear"}
WEIGHTS_PB = {name: number for number, name in WEIGHTS.items()}
TIE_BREAKS_PB = {name: number for number, name in TIE_BREAKS.items()}
HEADS_PB = {name: number for number, name in HEADS.items()}
INPUT_DTYPES_PB = {"uint8": tensor_pb2.DTYPE_UINT8, "float32": tensor_pb2.DTYPE_FLOAT32}


def optional(message: object, field: str) -> int | None:
    """The value of a proto3 ``optional`` field, or None when unset."""
    return getattr(message, field) if message.HasField(field) else None  # type: ignore[attr-defined]


def version_of(message: object) -> int | None:
    """The requested version (None = newest); versions are positive integers."""
    version = optional(message, "version")
    if version is not None and version < 1:
        raise InvalidInputError("version", "a positive integer, or unset for the newest", version)
    return version


def _enum(table: dict[int, str], value: int | None, field: str, enum: object) -> str | None:
    if value is None or value == 0:  # unset or *_UNSPECIFIED: the model's default
        return None
    if value not in table:
        names = ", ".join(enum.Name(number) for number in table)  # type: ignore[attr-defined]
        raise InvalidInputError(field, f"one of {names}", value)
    return table[value]


def decode_rows(tensor: tensor_pb2.Tensor, served: ServedModel, max_rows: int) -> np.ndarray:
    """Decode ``inputs`` and return the model's prepared float32 (n, dim) rows."""
    x = from_tensor(tensor, field="inputs", allowed=INPUT_DTYPES)
    if x.ndim == 0:
        raise InvalidInputError("inputs.shape", "(n, ...) with a leading batch axis", "a scalar")
    check_rows(x.shape[0], max_rows)
    return prepare_inputs(served.model, x)


def knn_options(request: pb.ClassifyRequest | pb.SearchRequest, served: ServedModel) -> KnnOptions:
    """Validated k-NN options of a Classify or Search request."""
    is_classify = isinstance(request, pb.ClassifyRequest)
    return resolve_options(
        served.model,
        k=optional(request, "k"),
        weights=_enum(WEIGHTS, optional(request, "weights"), "weights", pb.Weighting) if is_classify else None,
        tie_break=_enum(TIE_BREAKS, optional(request, "tie_break"), "tie_break", pb.TieBreak) if is_classify else None,
        nprobe=optional(request, "nprobe"),
        ef_search=optional(request, "ef_search"),
        top_n=optional(request, "top_n") if is_classify else None,
    )


def heads_of(request: pb.ClassifyRequest, served: ServedModel) -> tuple[str, ...]:
    """Heads to run: the requested ones (validated against the model), or all the model has."""
    if not request.heads:
        return served.heads
    heads: list[str] = []
    for number in request.heads:
        name = HEADS.get(number)
        if name is None or name not in served.heads:
            got = pb.Head.Name(number) if number in pb.Head.values() else number
            raise InvalidInputError("heads", f"a subset of {', '.join(served.heads)} (this model's heads)", got)
        if name not in heads:
            heads.append(name)
    return tuple(heads)


def _head(output: HeadOutput) -> pb.HeadResult:
    return pb.HeadResult(
        predictions=to_tensor(output.predictions),
        top_classes=to_tensor(output.top_classes),
        top_scores=to_tensor(output.top_scores),
    )


def _neighbors(output: NeighborsOutput) -> pb.Neighbors:
    return pb.Neighbors(ids=to_tensor(output.ids), distances=to_tensor(output.distances), labels=to_tensor(output.labels))


def classify_response(served: ServedModel, output: ClassifyOutput, *, tag: str = "") -> pb.ClassifyResponse:
    """A ClassifyResponse for one request's output."""
    response = pb.ClassifyResponse(model=served.name, version=served.version, tag=tag)
    if output.knn is not None:
        response.knn.CopyFrom(_head(output.knn))
        options = output.options
        response.params.CopyFrom(
            pb.EffectiveParams(
                k=options.k,
                weights=WEIGHTS_PB[options.weights],
                tie_break=TIE_BREAKS_PB[options.tie_break],
                nprobe=options.params.nprobe,
                ef_search=options.params.ef_search,
                top_n=options.top_n,
            )
        )
    if output.linear is not None:
        response.linear.CopyFrom(_head(output.linear))
    if output.neighbors is not None:
        response.neighbors.CopyFrom(_neighbors(output.neighbors))
    return response


def search_response(served: ServedModel, output: NeighborsOutput) -> pb.SearchResponse:
    """A SearchResponse."""
    return pb.SearchResponse(model=served.name, version=served.version, neighbors=_neighbors(output))


def model_info(served: ServedModel, versions: list[int]) -> pb.ModelInfo:
    """Describe one served version (``versions``: every loaded version of the model)."""
    model = served.model
    info = model.index_info
    defaults = model.defaults
    manifest = model.manifest
    return pb.ModelInfo(
        name=served.name,
        version=served.version,
        versions=sorted(versions),
        input_dtype=INPUT_DTYPES_PB[str(model.input_dtype)],
        input_shape=list(model.input_shape),
        dim=model.dim,
        class_names=list(model.class_names),
        index=pb.IndexInfo(
            spec=info.spec,
            factory=info.factory,
            metric=info.metric,
            kind=info.kind,
            ntotal=model.ntotal,
            dim=info.dim,
            nlist=nlist(model.index),
        ),
        heads=[HEADS_PB[head] for head in served.heads],
        defaults=pb.ModelDefaults(
            k=defaults.k,
            weights=WEIGHTS_PB[defaults.weights],
            tie_break=TIE_BREAKS_PB[defaults.tie_break],
            nprobe=defaults.nprobe,
            ef_search=defaults.ef_search,
        ),
        created_at=manifest.created_at.isoformat() if manifest is not None else "",
        dataset=manifest.dataset.name if manifest is not None and manifest.dataset is not None else "",
    )


def limits(max_message_bytes: int, max_rows_per_request: int, max_neighbors_per_request: int) -> pb.ServerLimits:
    """The ServerLimits message."""
    return pb.ServerLimits(
        max_message_bytes=max_message_bytes,
        max_rows_per_request=max_rows_per_request,
        max_neighbors_per_request=max_neighbors_per_request,
    )


__all__ = [
    "classify_response",
    "decode_rows",
    "heads_of",
    "knn_options",
    "limits",
    "model_info",
    "optional",
    "search_response",
    "version_of",
]
