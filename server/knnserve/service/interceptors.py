"""Server interceptors around every RPC.

Order (outermost first): ``ObservabilityInterceptor`` (request id, logs, metrics, and where an
exception becomes a status code via ``knnserve_client.wire.status``), ``AuthInterceptor``
(``auth.py``; a caller without the token never gets its body decoded), ``DecodeInterceptor``
(a body over the size limit or one protobuf cannot decode becomes RESOURCE_EXHAUSTED or
INVALID_ARGUMENT with a request id, instead of gRPC's own INTERNAL without one).

A call the client cancelled, or whose deadline passed, is counted and logged as CANCELLED or
DEADLINE_EXCEEDED at INFO level, without a traceback: it is the caller's choice, not a failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any

import grpc

from knnserve.service.handlers import WrappedHandlers, kind_of, metadata_values, rebuild
from knnserve.service.logs import request_id_var
from knnserve.service.metrics import ServiceMetrics
from knnserve.service.request_ids import accept_request_id
from knnserve_client.wire.errors import InvalidInputError, RequestTooLargeError
from knnserve_client.wire.status import REQUEST_ID_KEY, status_for

log = logging.getLogger("knnserve.service.rpc")


@dataclass(frozen=True)
class _BadBody:
    """What the guarded deserializer returns instead of raising: the error to raise inside the RPC."""

    error: Exception


class DecodeInterceptor(grpc.ServerInterceptor):
    """Decodes request bodies itself, so an oversized or undecodable body is an ordinary error of the call.

    ``max_message_bytes`` is the limit the server announces; gRPC's own receive limit is set higher
    (see ``server.py``) so that bodies up to that are refused here, with the call's request id.
    """

    def __init__(self, max_message_bytes: int) -> None:
        self._limit = max_message_bytes
        self._wrapped = WrappedHandlers()

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        return self._wrapped.get(handler_call_details.method, handler, self._wrap)

    def _wrap(self, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        decode = handler.request_deserializer
        kind = kind_of(handler)
        behavior = getattr(handler, kind)
        limit = self._limit

        def guarded(data: bytes) -> Any:
            if len(data) > limit:
                return _BadBody(RequestTooLargeError(
                    f"request: {len(data)} bytes exceed the limit of {limit} bytes per message (ServerLimits.max_message_bytes)"))
            try:
                return decode(data)
            except Exception as exc:  # protobuf raises DecodeError (and others) for bytes it cannot parse
                return _BadBody(InvalidInputError("request", "a serialized protobuf message of the method's type",
                                                  f"{len(data)} bytes that do not decode ({type(exc).__name__})"))

        if kind.startswith("unary_"):

            def unary_request(request: Any, context: grpc.ServicerContext) -> Any:
                if isinstance(request, _BadBody):
                    raise request.error
                return behavior(request, context)

            return rebuild(handler, unary_request, deserializer=guarded)

        def checked(requests: Iterator[Any]) -> Iterator[Any]:
            for request in requests:
                if isinstance(request, _BadBody):
                    raise request.error
                yield request

        def stream_request(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            return behavior(checked(requests), context)

        return rebuild(handler, stream_request, deserializer=guarded)


class _Call:
    """Bookkeeping of one RPC: its request id, timer, and how it ended."""

    def __init__(self, method: str, context: grpc.ServicerContext, metrics: ServiceMetrics | None) -> None:
        self.method = method
        self.context = context
        self.metrics = metrics
        self.started = time.perf_counter()
        self.finished = False
        self.request_id = accept_request_id(metadata_values(context, REQUEST_ID_KEY))
        self.token = request_id_var.set(self.request_id)
        context.set_trailing_metadata(((REQUEST_ID_KEY, self.request_id),))

    def _end(self, code: grpc.StatusCode) -> float:
        self.finished = True
        seconds = time.perf_counter() - self.started
        if self.metrics is not None:
            self.metrics.observe_request(self.method, code.name, seconds)
        request_id_var.reset(self.token)
        return seconds

    def _fields(self, code: grpc.StatusCode, seconds: float) -> dict[str, Any]:
        return {"method": self.method, "code": code.name, "duration_ms": round(seconds * 1e3, 3), "request_id": self.request_id}

    def ok(self) -> None:
        """The behaviour returned; counted OK unless the caller had gone by then (its answer is dropped)."""
        gone = self._caller_gone()
        if gone is not None:
            seconds = self._end(gone)
            log.info("rpc ended by the caller: %s", gone.name, extra=self._fields(gone, seconds))
            return
        seconds = self._end(grpc.StatusCode.OK)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("rpc ok", extra=self._fields(grpc.StatusCode.OK, seconds))

    def _caller_gone(self) -> grpc.StatusCode | None:
        """CANCELLED or DEADLINE_EXCEEDED when the client went away or its deadline passed, else None."""
        if self.context.is_active():
            return None
        return grpc.StatusCode.DEADLINE_EXCEEDED if self.context.time_remaining() <= 0 else grpc.StatusCode.CANCELLED

    def fail(self, error: Exception) -> None:
        """Record the failure and end the RPC with the mapped status; always raises."""
        already = self.context.code()
        if already is not None and already != grpc.StatusCode.OK:
            self._end(already)  # the behaviour aborted with its own status: keep it
            raise error
        gone = self._caller_gone()
        if gone is not None or isinstance(error, CancelledError):
            code = gone or grpc.StatusCode.CANCELLED
            seconds = self._end(code)
            log.info("rpc ended by the caller: %s", code.name, extra=self._fields(code, seconds))
            self.context.abort(code, "the call was cancelled" if code == grpc.StatusCode.CANCELLED else "the deadline passed")
        mapped = status_for(error)
        seconds = self._end(mapped.code)
        if mapped.log_traceback:
            log.error("rpc failed: %s", error, exc_info=error, extra=self._fields(mapped.code, seconds))
        else:
            log.info("rpc rejected: %s", mapped.message, extra=self._fields(mapped.code, seconds))
        self.context.abort(mapped.code, mapped.message)

    def closed_early(self) -> None:
        """A stream the client stopped reading or cancelled before the end."""
        if not self.finished:
            self._end(self._caller_gone() or grpc.StatusCode.CANCELLED)


class ObservabilityInterceptor(grpc.ServerInterceptor):
    """Wraps every RPC: request id (in and in trailing metadata), logs, metrics, error -> status."""

    def __init__(self, metrics: ServiceMetrics | None = None) -> None:
        self._metrics = metrics
        self._wrapped = WrappedHandlers()

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        return self._wrapped.get(method, handler, lambda inner: self._wrap(method.lstrip("/"), inner))

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        kind = kind_of(handler)
        behavior = getattr(handler, kind)
        metrics = self._metrics
        if kind.endswith("_unary"):

            def unary(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
                call = _Call(method, context, metrics)
                try:
                    response = behavior(request_or_iterator, context)
                except Exception as error:  # every failure goes through status_for
                    call.fail(error)
                call.ok()
                return response

            return rebuild(handler, unary)

        def streaming(request_or_iterator: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            call = _Call(method, context, metrics)
            completed = False
            try:
                yield from behavior(request_or_iterator, context)
                completed = True
            except Exception as error:
                call.fail(error)
            finally:
                if completed:
                    call.ok()
                else:
                    call.closed_early()  # no-op after fail(); else the client closed the stream early

        return rebuild(handler, streaming)


__all__ = ["DecodeInterceptor", "ObservabilityInterceptor"]
