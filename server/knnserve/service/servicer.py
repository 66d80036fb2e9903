"""The KnnServe servicer: decode the message, call the data plane, encode the answer. Nothing else.

Its methods are coroutines on the server's event loop. Errors are not handled here: they propagate
to the RPC wrapper (``rpc.py``), which maps them to status codes (``knnserve_client.wire.status``).
Writes (a log append and fsync, a snapshot) block, so they run in ``asyncio.to_thread``: on the loop's
default executor, which the server sets to its pool for blocking work; never on the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from grpc import aio

from knnserve.dataplane import DataPlane, PendingClassify
from knnserve.service.streaming import classify_stream
from knnserve_client.wire.v1 import knnserve_pb2 as pb
from knnserve_client.wire.v1 import knnserve_pb2_grpc
from knnserve_client.wire.v1.codec import heads_from, query_from, to_proto, version_from
from knnserve_client.wire.v1.tensors import INPUT_WIRE_DTYPES, from_tensor

# gRPC reports "no deadline" as an enormous time remaining; treat anything beyond this as none.
NO_DEADLINE_S = 1e7


def deadline_of(context: aio.ServicerContext) -> float | None:
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

    async def Classify(self, request: pb.ClassifyRequest, context: aio.ServicerContext) -> pb.ClassifyResponse:
        # A caller that goes away cancels this task, and with it the queued search (it is skipped).
        return to_proto(await self._start(request, deadline_of(context)).result())

    async def ClassifyStream(
        self, request_iterator: AsyncIterator[pb.ClassifyRequest], context: aio.ServicerContext
    ) -> AsyncIterator[pb.ClassifyResponse]:
        deadline = deadline_of(context)
        async for response in classify_stream(request_iterator, lambda request: self._start(request, deadline),
                                              window=self._stream_window):
            yield response

    async def Search(self, request: pb.SearchRequest, context: aio.ServicerContext) -> pb.SearchResponse:
        version = version_from(request)
        inputs = from_tensor(request.inputs, field="inputs", allowed=INPUT_WIRE_DTYPES)
        result = await self._plane.search(request.model, version, inputs, query_from(request), deadline=deadline_of(context))
        return to_proto(result)

    async def ListModels(self, request: pb.ListModelsRequest, context: aio.ServicerContext) -> pb.ListModelsResponse:
        models = [to_proto(info) for info in self._plane.describe_all()]
        return pb.ListModelsResponse(models=models, limits=self._limits)

    async def GetModel(self, request: pb.GetModelRequest, context: aio.ServicerContext) -> pb.GetModelResponse:
        info = self._plane.describe(request.name, version_from(request), field="name")
        online = self._plane.online_state(request.name, info.version, field="name")
        return pb.GetModelResponse(model=to_proto(info), limits=self._limits,
                                   online=to_proto(online) if online is not None else None)

    async def AddExamples(self, request: pb.AddExamplesRequest, context: aio.ServicerContext) -> pb.AddExamplesResponse:
        inputs = from_tensor(request.inputs, field="inputs", allowed=INPUT_WIRE_DTYPES)
        return to_proto(await asyncio.to_thread(self._plane.writer.add, request.model, inputs, list(request.labels),
                                                request_id=request.request_id))

    async def RemoveExamples(self, request: pb.RemoveExamplesRequest,
                             context: aio.ServicerContext) -> pb.RemoveExamplesResponse:
        return to_proto(await asyncio.to_thread(self._plane.writer.remove, request.model, list(request.ids),
                                                request_id=request.request_id))

    async def SnapshotModel(self, request: pb.SnapshotModelRequest,
                            context: aio.ServicerContext) -> pb.SnapshotModelResponse:
        return to_proto(await asyncio.to_thread(self._plane.writer.snapshot, request.model))


__all__ = ["KnnServeServicer", "deadline_of"]
