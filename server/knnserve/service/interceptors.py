"""Server interceptors: bearer-token auth, and the wrapper every RPC runs in (request id, logs,
metrics, and where exceptions become status codes via knnserve_client.wire.status.status_for)."""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from knnserve.service.logs import request_id_var
from knnserve.service.metrics import ServiceMetrics
from knnserve_client.wire.errors import TokenRejectedError
from knnserve_client.wire.status import REQUEST_ID_KEY, status_for

log = logging.getLogger("knnserve.service.rpc")
MAX_REQUEST_ID_CHARS = 128
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)
_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def _kind(handler: grpc.RpcMethodHandler) -> str:
    for kind in _KINDS:
        if getattr(handler, kind) is not None:
            return kind
    raise ValueError("handler has no behaviour")


def _rebuild(handler: grpc.RpcMethodHandler, behavior: Callable[..., Any]) -> grpc.RpcMethodHandler:
    """A handler of the same kind and (de)serializers as ``handler`` with another behaviour."""
    factory = getattr(grpc, f"{_kind(handler)}_rpc_method_handler")
    return factory(
        behavior, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )


def _metadata(details: grpc.HandlerCallDetails | grpc.ServicerContext, key: str) -> str | None:
    pairs = details.invocation_metadata if isinstance(details, grpc.HandlerCallDetails) else details.invocation_metadata()
    for name, value in pairs or ():
        if name == key:
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


class AuthInterceptor(grpc.ServerInterceptor):
    """Rejects calls without ``authorization: Bearer <token>`` (health stays open for probes)."""

    def __init__(self, token: str, *, open_prefixes: tuple[str, ...] = OPEN_METHOD_PREFIXES) -> None:
        self._expected = f"Bearer {token}".encode()
        self._open = open_prefixes

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(self._open):
            return handler
        sent = _metadata(handler_call_details, "authorization")
        # compare_digest: the time taken must not reveal how much of the token matched.
        if sent is not None and hmac.compare_digest(sent.encode("utf-8", "replace"), self._expected):
            return handler
        reason = "missing bearer token (metadata authorization: Bearer <token>)" if sent is None else "wrong bearer token"

        def reject(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
            raise TokenRejectedError(reason)

        return _rebuild(handler, reject)


class _Call:
    """Bookkeeping of one RPC: its request id, timer, and how it ended."""

    def __init__(self, method: str, context: grpc.ServicerContext, metrics: ServiceMetrics | None) -> None:
        self.method = method
        self.context = context
        self.metrics = metrics
        self.started = time.perf_counter()
        self.finished = False
        sent = _metadata(context, REQUEST_ID_KEY)
        valid = sent is not None and 0 < len(sent) <= MAX_REQUEST_ID_CHARS and sent.isprintable()
        self.request_id = sent if valid else uuid.uuid4().hex
        self.token = request_id_var.set(self.request_id)
        context.set_trailing_metadata(((REQUEST_ID_KEY, self.request_id),))

    def _end(self, code: grpc.StatusCode) -> float:
        self.finished = True
        seconds = time.perf_counter() - self.started
        if self.metrics is not None:
            self.metrics.observe_request(self.method, code.name, seconds)
        request_id_var.reset(self.token)
        return seconds

    def ok(self) -> None:
        seconds = self._end(grpc.StatusCode.OK)
        log.debug("rpc ok", extra={"method": self.method, "code": "OK", "duration_ms": round(seconds * 1e3, 3),
                                   "request_id": self.request_id})

    def fail(self, error: Exception) -> None:
        """Record the failure and end the RPC with the mapped status; always raises."""
        already = self.context.code()
        if already is not None and already != grpc.StatusCode.OK:
            self._end(already)  # the behaviour aborted with its own status: keep it
            raise error
        mapped = status_for(error)
        seconds = self._end(mapped.code)
        fields = {"method": self.method, "code": mapped.code.name, "duration_ms": round(seconds * 1e3, 3),
                  "request_id": self.request_id}
        if mapped.log_traceback:
            log.error("rpc failed: %s", error, exc_info=error, extra=fields)
        else:
            log.info("rpc rejected: %s", mapped.message, extra=fields)
        self.context.abort(mapped.code, mapped.message)

    def cancelled(self) -> None:
        if not self.finished:
            self._end(grpc.StatusCode.CANCELLED)


class ObservabilityInterceptor(grpc.ServerInterceptor):
    """Wraps every RPC: request id (in and in trailing metadata), logs, metrics, error -> status."""

    def __init__(self, metrics: ServiceMetrics | None = None) -> None:
        self._metrics = metrics

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method.lstrip("/")
        kind = _kind(handler)
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

            return _rebuild(handler, unary)

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
                    call.cancelled()  # no-op after fail(); else the client closed the stream early

        return _rebuild(handler, streaming)


__all__ = ["AuthInterceptor", "ObservabilityInterceptor", "REQUEST_ID_KEY"]
