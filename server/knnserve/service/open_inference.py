"""The Open Inference Protocol (KServe v2) servicer: a second thin protocol over the same data plane.

A knnserve model appears as one input, ``images`` (the model's dtype, shape [-1, *input_shape];
UINT8 and FP32 are both accepted, as [n, *input_shape] or [n, dim]), and these outputs:

    predictions         INT64 [n]      the k-NN head's class per row
    scores              FP32  [n, C]   the k-NN vote shares
    linear_predictions  INT64 [n]      the linear head's class (models with one)
    linear_scores       FP32  [n, C]   its softmax scores
    neighbor_ids        INT64 [n, k]   on request: the neighbors, their distances and labels
    neighbor_distances  FP32  [n, k]
    neighbor_labels     INT64 [n, k]

No outputs requested: the predictions and scores of every head the model has. Request parameters
k, weights, tie_break, nprobe and ef_search are the k-NN query. Validation, limits, batching,
errors, auth, request ids and metrics are the knnserve.v1 service's, because both call the data
plane through the same RPC wrapper (``rpc.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from grpc import aio

from knnserve import __version__
from knnserve.dataplane import DataPlane
from knnserve.service.servicer import deadline_of
from knnserve_client.wire.errors import InvalidInputError, ModelNotFoundError, ModelsNotLoadedError
from knnserve_client.wire.inference import grpc_predict_v2_pb2 as v2
from knnserve_client.wire.inference import grpc_predict_v2_pb2_grpc
from knnserve_client.wire.inference.codec import decode_input, encode_output, query_from_parameters, version_from_text
from knnserve_client.wire.model_info import ModelInfo
from knnserve_client.wire.results import ClassifyResult

INPUT_NAME = "images"
PLATFORM = "knnserve_faiss"
# Output name -> (head it comes from, what it is)
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
SERVICE_NAME = v2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name


def model_outputs(info: ModelInfo) -> list[v2.ModelMetadataResponse.TensorMetadata]:
    """The outputs a model offers, as ModelMetadata describes them."""
    classes = len(info.class_names)
    tensor = v2.ModelMetadataResponse.TensorMetadata
    outputs = [tensor(name="predictions", datatype="INT64", shape=[-1]), tensor(name="scores", datatype="FP32", shape=[-1, classes])]
    if "linear" in info.heads:
        outputs += [tensor(name="linear_predictions", datatype="INT64", shape=[-1]),
                    tensor(name="linear_scores", datatype="FP32", shape=[-1, classes])]
    outputs += [tensor(name="neighbor_ids", datatype="INT64", shape=[-1, -1]),
                tensor(name="neighbor_distances", datatype="FP32", shape=[-1, -1]),
                tensor(name="neighbor_labels", datatype="INT64", shape=[-1, -1])]
    return outputs


def output_array(name: str, result: ClassifyResult, classes: int) -> np.ndarray:
    """One named output of a classification."""
    knn, linear, neighbors = result.knn, result.linear, result.neighbors
    arrays = {
        "predictions": lambda: knn.predictions,  # type: ignore[union-attr]
        "scores": lambda: knn.class_scores(classes),  # type: ignore[union-attr]
        "linear_predictions": lambda: linear.predictions,  # type: ignore[union-attr]
        "linear_scores": lambda: linear.class_scores(classes),  # type: ignore[arg-type]
        "neighbor_ids": lambda: neighbors.ids,  # type: ignore[union-attr]
        "neighbor_distances": lambda: neighbors.distances,  # type: ignore[union-attr]
        "neighbor_labels": lambda: neighbors.labels,  # type: ignore[union-attr]
    }
    return arrays[name]()


class OpenInferenceServicer(grpc_predict_v2_pb2_grpc.GRPCInferenceServiceServicer):
    """inference.GRPCInferenceService over a DataPlane; ``ready`` says whether health "" is SERVING."""

    def __init__(self, plane: DataPlane, ready: Callable[[], bool]) -> None:
        self._plane = plane
        self._ready = ready

    async def ServerLive(self, request: v2.ServerLiveRequest, context: aio.ServicerContext) -> v2.ServerLiveResponse:
        return v2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: v2.ServerReadyRequest, context: aio.ServicerContext) -> v2.ServerReadyResponse:
        return v2.ServerReadyResponse(ready=self._ready())

    async def ModelReady(self, request: v2.ModelReadyRequest, context: aio.ServicerContext) -> v2.ModelReadyResponse:
        version = version_from_text(request.version, "version")
        try:
            self._plane.describe(request.name, version, field="name")
        except (ModelNotFoundError, ModelsNotLoadedError):
            return v2.ModelReadyResponse(ready=False)
        return v2.ModelReadyResponse(ready=self._ready())

    async def ServerMetadata(self, request: v2.ServerMetadataRequest, context: aio.ServicerContext) -> v2.ServerMetadataResponse:
        return v2.ServerMetadataResponse(name="knnserve", version=__version__, extensions=[])

    async def ModelMetadata(self, request: v2.ModelMetadataRequest, context: aio.ServicerContext) -> v2.ModelMetadataResponse:
        info = self._plane.describe(request.name, version_from_text(request.version, "version"), field="name")
        datatype = "UINT8" if info.input_dtype == "uint8" else "FP32"
        image = v2.ModelMetadataResponse.TensorMetadata(name=INPUT_NAME, datatype=datatype, shape=[-1, *info.input_shape])
        return v2.ModelMetadataResponse(name=info.name, versions=[str(v) for v in info.versions], platform=PLATFORM,
                                        inputs=[image], outputs=model_outputs(info))

    async def ModelInfer(self, request: v2.ModelInferRequest, context: aio.ServicerContext) -> v2.ModelInferResponse:
        version = version_from_text(request.model_version, "model_version")
        if len(request.inputs) != 1 or request.inputs[0].name != INPUT_NAME:
            names = [tensor.name for tensor in request.inputs]
            raise InvalidInputError("inputs", f"one input named {INPUT_NAME!r} (ModelMetadata)", names)
        if len(request.raw_input_contents) > 1:
            raise InvalidInputError("raw_input_contents", "at most one entry (one input)", len(request.raw_input_contents))
        raw = request.raw_input_contents[0] if request.raw_input_contents else None
        images = decode_input(request.inputs[0], raw, "inputs[0]")
        query = query_from_parameters(request.parameters)
        info = self._plane.describe(request.model_name, version)
        offered = {tensor.name for tensor in model_outputs(info)}
        wanted = [output.name for output in request.outputs]
        for name in wanted:
            if name not in offered:
                raise InvalidInputError("outputs", f"names among {', '.join(sorted(offered))}", repr(name))
        if not wanted:
            wanted = [name for name in ("predictions", "scores", "linear_predictions", "linear_scores") if name in offered]
        heads = tuple(dict.fromkeys(OUTPUTS[name] for name in wanted))
        classes = len(info.class_names)
        top_n = classes if any(name.endswith("scores") for name in wanted) else 0  # no score work for predictions only
        result = await self._plane.classify(
            request.model_name, info.version, images, query.replace(top_n=top_n), heads,
            return_neighbors=any(name in NEIGHBOR_OUTPUTS for name in wanted), deadline=deadline_of(context),
            field="inputs[0]",
        )
        response = v2.ModelInferResponse(model_name=result.model, model_version=str(result.version), id=request.id)
        for name in dict.fromkeys(wanted):
            tensor, data = encode_output(name, output_array(name, result, classes))
            response.outputs.append(tensor)
            response.raw_output_contents.append(data)
        return response


__all__ = ["INPUT_NAME", "OUTPUTS", "SERVICE_NAME", "OpenInferenceServicer", "model_outputs"]
