"""The Open Inference Protocol (KServe v2) servicer: a second thin protocol over the same data plane.

The model's input and outputs, output selection and the request's checks are ``inference.py``'s,
which the REST binding (``rest/``) shares. Validation, limits, batching, errors, auth, request ids
and metrics are the knnserve.v1 service's, because both call the data plane through the same
RPC wrapper (``rpc.py``).
"""

from __future__ import annotations

from collections.abc import Callable

from grpc import aio

from knnserve.dataplane import DataPlane
from knnserve.service.inference import (
    INPUT_NAME,
    OUTPUTS,
    PLATFORM,
    SERVER_NAME,
    SERVER_VERSION,
    TensorSpec,
    check_input_names,
    check_output_parameters,
    input_spec,
    model_ready,
    output_arrays,
    output_specs,
    plan_infer,
)
from knnserve.service.servicer import deadline_of
from knnserve_client.wire.errors import InvalidInputError
from knnserve_client.wire.inference import grpc_predict_v2_pb2 as v2
from knnserve_client.wire.inference import grpc_predict_v2_pb2_grpc
from knnserve_client.wire.inference.codec import (
    decode_input,
    encode_output,
    parameter_values,
    query_from_parameters,
    version_from_text,
)
from knnserve_client.wire.model_info import ModelInfo

SERVICE_NAME = v2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name


def tensor_metadata(spec: TensorSpec) -> v2.ModelMetadataResponse.TensorMetadata:
    """A TensorSpec as ModelMetadata's message."""
    return v2.ModelMetadataResponse.TensorMetadata(name=spec.name, datatype=spec.datatype, shape=list(spec.shape))


def model_outputs(info: ModelInfo) -> list[v2.ModelMetadataResponse.TensorMetadata]:
    """The outputs a model offers, as ModelMetadata describes them."""
    return [tensor_metadata(spec) for spec in output_specs(info)]


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
        return v2.ModelReadyResponse(ready=model_ready(self._plane, request.name, version, self._ready))

    async def ServerMetadata(self, request: v2.ServerMetadataRequest, context: aio.ServicerContext) -> v2.ServerMetadataResponse:
        return v2.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=[])

    async def ModelMetadata(self, request: v2.ModelMetadataRequest, context: aio.ServicerContext) -> v2.ModelMetadataResponse:
        info = self._plane.describe(request.name, version_from_text(request.version, "version"), field="name")
        return v2.ModelMetadataResponse(name=info.name, versions=[str(v) for v in info.versions], platform=PLATFORM,
                                        inputs=[tensor_metadata(input_spec(info))], outputs=model_outputs(info))

    async def ModelInfer(self, request: v2.ModelInferRequest, context: aio.ServicerContext) -> v2.ModelInferResponse:
        version = version_from_text(request.model_version, "model_version")
        check_input_names([tensor.name for tensor in request.inputs])
        if len(request.raw_input_contents) > 1:
            raise InvalidInputError("raw_input_contents", "at most one entry (one input)", len(request.raw_input_contents))
        raw = request.raw_input_contents[0] if request.raw_input_contents else None
        images = decode_input(request.inputs[0], raw, "inputs[0]")
        query = query_from_parameters(request.parameters)
        for index, output in enumerate(request.outputs):
            check_output_parameters(index, parameter_values(output.parameters))
        info = self._plane.describe(request.model_name, version)
        plan = plan_infer(info, [output.name for output in request.outputs])
        result = await self._plane.classify(
            request.model_name, info.version, images, plan.query(query), plan.heads,
            return_neighbors=plan.return_neighbors, deadline=deadline_of(context), field="inputs[0]",
        )
        response = v2.ModelInferResponse(model_name=result.model, model_version=str(result.version), id=request.id)
        for name, array in output_arrays(plan, result):
            tensor, data = encode_output(name, array)
            response.outputs.append(tensor)
            response.raw_output_contents.append(data)
        return response


__all__ = ["INPUT_NAME", "OUTPUTS", "SERVICE_NAME", "OpenInferenceServicer", "model_outputs"]
