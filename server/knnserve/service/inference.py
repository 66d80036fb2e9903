"""The Open Inference Protocol's view of a knnserve model, shared by both bindings (gRPC and REST).

A knnserve model appears as one input, ``images`` (the model's dtype, shape [-1, *input_shape];
UINT8 and FP32 are both accepted, as [n, *input_shape] or [n, dim]), and these outputs:

    predictions         INT64 [n]      the k-NN head's class per row
    scores              FP32  [n, C]   the k-NN vote shares
    linear_predictions  INT64 [n]      the linear head's class (models with one)
    linear_scores       FP32  [n, C]   its softmax scores
    neighbor_ids        INT64 [n, k]   on request: the neighbors, their distances and labels
    neighbor_distances  FP32  [n, k]
    neighbor_labels     INT64 [n, k]

No outputs requested: the predictions and scores of every head the model has. What each binding
decodes (tensors, parameters: ``knnserve_client.wire.inference.tensors``) and what it asks of the data
plane (heads, top_n, neighbours: :func:`plan_infer`) come from here, so both give the same answers
and the same errors. No grpc and no HTTP here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from knnserve import __version__
from knnserve.dataplane import DataPlane
from knnserve_client.wire.errors import InvalidInputError, ModelNotFoundError, ModelsNotLoadedError
from knnserve_client.wire.model_info import ModelInfo
from knnserve_client.wire.query import KnnQuery
from knnserve_client.wire.results import ClassifyResult

SERVER_NAME = "knnserve"
SERVER_VERSION = __version__
INPUT_NAME = "images"
PLATFORM = "knnserve_faiss"
# Output name -> the head it comes from
OUTPUTS: dict[str, str] = {
    "predictions": "knn",
    "scores": "knn",
    "linear_predictions": "linear",
    "linear_scores": "linear",
    "neighbor_ids": "knn",
    "neighbor_distances": "knn",
    "neighbor_labels": "knn",
}
NEIGHBOR_OUTPUTS = ("neighbor_ids", "neighbor_distances", "neighbor_labels")
DEFAULT_OUTPUTS = ("predictions", "scores", "linear_predictions", "linear_scores")


@dataclass(frozen=True)
class TensorSpec:
    """A tensor as model metadata describes it (-1: any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


def input_spec(info: ModelInfo) -> TensorSpec:
    """The model's one input: its own dtype, [-1, *input_shape]."""
    return TensorSpec(INPUT_NAME, "UINT8" if info.input_dtype == "uint8" else "FP32", (-1, *info.input_shape))


def output_specs(info: ModelInfo) -> list[TensorSpec]:
    """The outputs a model offers."""
    classes = len(info.class_names)
    outputs = [TensorSpec("predictions", "INT64", (-1,)), TensorSpec("scores", "FP32", (-1, classes))]
    if "linear" in info.heads:
        outputs += [TensorSpec("linear_predictions", "INT64", (-1,)), TensorSpec("linear_scores", "FP32", (-1, classes))]
    outputs += [TensorSpec("neighbor_ids", "INT64", (-1, -1)), TensorSpec("neighbor_distances", "FP32", (-1, -1)),
                TensorSpec("neighbor_labels", "INT64", (-1, -1))]
    return outputs


def check_input_names(names: Sequence[str]) -> None:
    """A request carries exactly one input, named ``images``."""
    if len(names) != 1 or names[0] != INPUT_NAME:
        raise InvalidInputError("inputs", f"one input named {INPUT_NAME!r} (ModelMetadata)", list(names))


def check_output_parameters(index: int, parameters: Mapping[str, object]) -> None:
    """A requested output takes no parameters here (Triton's ``classification`` is not offered: ``scores`` are)."""
    for name, value in parameters.items():
        if name == "classification":
            if value in (None, 0):
                continue
            raise InvalidInputError(f"outputs[{index}].parameters.classification",
                                    "no classification extension here: ask for scores", repr(value))
        raise InvalidInputError(f"outputs[{index}].parameters.{name}", "no parameters", repr(name))


@dataclass(frozen=True)
class InferPlan:
    """What an inference request asks of the data plane, and which outputs it answers, in order."""

    outputs: tuple[str, ...]
    heads: tuple[str, ...]
    top_n: int
    return_neighbors: bool
    classes: int

    def query(self, query: KnnQuery) -> KnnQuery:
        """The request's query with the top_n its outputs need."""
        return query.replace(top_n=self.top_n)


def plan_infer(info: ModelInfo, requested: Sequence[str]) -> InferPlan:
    """The plan of a request naming ``requested`` outputs (none: every head's predictions and scores).

    An output the model does not offer is an InvalidInputError naming the ones it does.
    """
    offered = {spec.name for spec in output_specs(info)}
    for name in requested:
        if name not in offered:
            raise InvalidInputError("outputs", f"names among {', '.join(sorted(offered))}", repr(name))
    wanted = tuple(dict.fromkeys(requested)) or tuple(name for name in DEFAULT_OUTPUTS if name in offered)
    classes = len(info.class_names)
    return InferPlan(
        outputs=wanted,
        heads=tuple(dict.fromkeys(OUTPUTS[name] for name in wanted)),
        top_n=classes if any(name.endswith("scores") for name in wanted) else 0,  # no score work for predictions only
        return_neighbors=any(name in NEIGHBOR_OUTPUTS for name in wanted),
        classes=classes,
    )


def output_array(name: str, result: ClassifyResult, classes: int) -> np.ndarray:
    """One named output of a classification."""
    knn, linear, neighbors = result.knn, result.linear, result.neighbors
    arrays = {
        "predictions": lambda: knn.predictions,  # type: ignore[union-attr]
        "scores": lambda: knn.class_scores(classes),  # type: ignore[union-attr]
        "linear_predictions": lambda: linear.predictions,  # type: ignore[union-attr]
        "linear_scores": lambda: linear.class_scores(classes),  # type: ignore[union-attr]
        "neighbor_ids": lambda: neighbors.ids,  # type: ignore[union-attr]
        "neighbor_distances": lambda: neighbors.distances,  # type: ignore[union-attr]
        "neighbor_labels": lambda: neighbors.labels,  # type: ignore[union-attr]
    }
    return arrays[name]()


def output_arrays(plan: InferPlan, result: ClassifyResult) -> list[tuple[str, np.ndarray]]:
    """The planned outputs of a classification, named, in the order the request asked for them."""
    return [(name, output_array(name, result, plan.classes)) for name in plan.outputs]


def model_ready(plane: DataPlane, name: str, version: int | None, ready: Callable[[], bool]) -> bool:
    """The model (and version) is served and the server ready; an unknown one is simply not ready."""
    try:
        plane.describe(name, version, field="name")
    except (ModelNotFoundError, ModelsNotLoadedError):
        return False
    return ready()


__all__ = ["DEFAULT_OUTPUTS", "INPUT_NAME", "NEIGHBOR_OUTPUTS", "OUTPUTS", "PLATFORM", "SERVER_NAME", "SERVER_VERSION",
           "InferPlan", "TensorSpec", "check_input_names", "check_output_parameters", "input_spec", "model_ready",
           "output_array", "output_arrays", "output_specs", "plan_infer"]
