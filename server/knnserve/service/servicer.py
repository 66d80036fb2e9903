"""The KnnServe servicer: decode the message, call the data plane, encode the answer. Nothing else.

Errors are not handled here: they propagate to the interceptor, which maps them to status codes
(``knnserve_client.wire.status``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc

from knnserve.dataplane import DataPlane, PendingClassify
from knnserve.service.streaming import classify_stream
from knnserve_client.wire.v1 import knnserve_pb2 as pb
from knnserve_client.wire.v1 import knnserve_pb2_grpc
from knnserve_client.wire.v1.codec import heads_from, query_from, to_proto, version_from
from knnserve_client.wire.v1.tensors import INPUT_WIRE_DTYPES, from_tensor

# gRPC reports "no deadline" as an enormous time remaining; treat anything beyond this as none.
NO_DEADLINE_S = 1e7


def deadline_of(context: grpc.ServicerContext) -> float | None:
    """The call's deadline as a ``time.monotonic`` time (None = no deadline)."""
    remaining = context.time_remaining()
    if remaining is None or remaining > NO_DEADLINE_S:
        return None
    return time.monotonic() + remaining


class KnnServeServicer(knnserve_pb2_grpc.KnnServeServicer):
    """Implements knnserve.v1.KnnServe over a DataPlane."""

    def __init__(self, plane: DataPlane, *, stream_window: int = 8) -> None:
        self._plane = plane
        self._limits = to_proto(plane.limits)
        self._stream_window = stream_window

    def _start(self, request: pb.ClassifyRequest, deadline: float | None) -> PendingClassify:
        version = version_from(request)
        inputs = from_tensor(request.inputs, field="inputs", allowed=INPUT_WIRE_DTYPES)
        return self._plane.start_classify(
            request.model, version, inputs, query_from(request), heads_from(request),
            return_neighbors=request.return_neighbors, tag=request.tag, deadline=deadline,
        )

    def Classify(self, request: pb.ClassifyRequest, context: grpc.ServicerContext) -> pb.ClassifyResponse:
        pending = self._start(request, deadline_of(context))
        context.add_callback(pending.cancel)  # a caller that goes away does not get searched for
        return to_proto(pending.result())

    def ClassifyStream(
        self, request_iterator: Iterator[pb.ClassifyRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ClassifyResponse]:
        deadline = deadline_of(context)
        yield from classify_stream(request_iterator, lambda request: self._start(request, deadline),
                                   window=self._stream_window)

    def Search(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> pb.SearchResponse:
        version = version_from(request)
        inputs = from_tensor(request.inputs, field="inputs", allowed=INPUT_WIRE_DTYPES)
        result = self._plane.search(request.model, version, inputs, query_from(request), deadline=deadline_of(context))
        return to_proto(result)

    def ListModels(self, request: pb.ListModelsRequest, context: grpc.ServicerContext) -> pb.ListModelsResponse:
        models = [to_proto(info) for info in self._plane.describe_all()]
        return pb.ListModelsResponse(models=models, limits=self._limits)

    def GetModel(self, request: pb.GetModelRequest, context: grpc.ServicerContext) -> pb.GetModelResponse:
        info = self._plane.describe(request.name, version_from(request), field="name")
        online = self._plane.online_state(request.name, info.version, field="name")
        return pb.GetModelResponse(model=to_proto(info), limits=self._limits,
                                   online=to_proto(online) if online is not None else None)

    def AddExamples(self, request: pb.AddExamplesRequest, context: grpc.ServicerContext) -> pb.AddExamplesResponse:
        inputs = from_tensor(request.inputs, field="inputs", allowed=INPUT_WIRE_DTYPES)
        return to_proto(self._plane.writer.add(request.model, inputs, list(request.labels), request_id=request.request_id))

    def RemoveExamples(self, request: pb.RemoveExamplesRequest, context: grpc.ServicerContext) -> pb.RemoveExamplesResponse:
        return to_proto(self._plane.writer.remove(request.model, list(request.ids), request_id=request.request_id))

    def SnapshotModel(self, request: pb.SnapshotModelRequest, context: grpc.ServicerContext) -> pb.SnapshotModelResponse:
        return to_proto(self._plane.writer.snapshot(request.model))


__all__ = ["KnnServeServicer", "deadline_of"]
