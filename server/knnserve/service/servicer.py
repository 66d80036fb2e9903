"""The KnnServe servicer: look up the model, convert the message, delegate, convert back. Nothing else.

Errors are not handled here: they propagate to the interceptor, which maps them to status codes.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from knnserve.service import convert, inference
from knnserve.service.registry import ModelRegistry
from knnserve.service.streaming import classify_stream
from knnserve.v1 import knnserve_pb2 as pb
from knnserve.v1 import knnserve_pb2_grpc


class KnnServeServicer(knnserve_pb2_grpc.KnnServeServicer):
    """Implements knnserve.v1.KnnServe over a ModelRegistry."""

    def __init__(
        self,
        registry: ModelRegistry,
        *,
        max_message_bytes: int,
        max_rows_per_request: int,
        max_neighbors_per_request: int,
        stream_window: int = 8,
    ) -> None:
        self._registry = registry
        self._limits = convert.limits(max_message_bytes, max_rows_per_request, max_neighbors_per_request)
        self._max_rows = max_rows_per_request
        self._max_neighbors = max_neighbors_per_request
        self._stream_window = stream_window

    def _start(self, request: pb.ClassifyRequest, deadline: float | None) -> inference.PendingClassify:
        served = self._registry.get(request.model, convert.version_of(request))
        rows = convert.decode_rows(request.inputs, served, self._max_rows)
        options = convert.knn_options(request, served)
        inference.check_neighbors(rows.shape[0], options.k, self._max_neighbors)
        return inference.PendingClassify(
            served,
            rows,
            options,
            convert.heads_of(request, served),
            deadline=deadline,
            return_neighbors=request.return_neighbors,
        )

    def Classify(self, request: pb.ClassifyRequest, context: grpc.ServicerContext) -> pb.ClassifyResponse:
        pending = self._start(request, inference.deadline_from(context.time_remaining()))
        context.add_callback(pending.cancel)  # a caller that goes away does not get searched for
        return convert.classify_response(pending.served, pending.result(), tag=request.tag)

    def ClassifyStream(
        self, request_iterator: Iterator[pb.ClassifyRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.ClassifyResponse]:
        deadline = inference.deadline_from(context.time_remaining())
        yield from classify_stream(
            request_iterator,
            lambda request: self._start(request, deadline),
            lambda pending, request: convert.classify_response(pending.served, pending.result(), tag=request.tag),
            window=self._stream_window,
        )

    def Search(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> pb.SearchResponse:
        served = self._registry.get(request.model, convert.version_of(request))
        rows = convert.decode_rows(request.inputs, served, self._max_rows)
        options = convert.knn_options(request, served)
        inference.check_neighbors(rows.shape[0], options.k, self._max_neighbors)
        output = inference.search(served, rows, options, deadline=inference.deadline_from(context.time_remaining()))
        return convert.search_response(served, output)

    def ListModels(self, request: pb.ListModelsRequest, context: grpc.ServicerContext) -> pb.ListModelsResponse:
        table = self._registry.snapshot()
        models = [convert.model_info(versions[max(versions)], list(versions)) for _, versions in sorted(table.items())]
        return pb.ListModelsResponse(models=models, limits=self._limits)

    def GetModel(self, request: pb.GetModelRequest, context: grpc.ServicerContext) -> pb.GetModelResponse:
        served = self._registry.get(request.name, convert.version_of(request), field="name")
        versions = list(self._registry.snapshot().get(served.name, {served.version: served}))
        return pb.GetModelResponse(model=convert.model_info(served, versions), limits=self._limits)


__all__ = ["KnnServeServicer"]
