"""The one wrapper around every RPC of the asyncio server: what each call needs before and after its servicer.

Built once per method when the server starts (no interceptor chain, nothing wrapped per call). In order:

1. request id: the caller's ``x-request-id`` or a fresh one, in the log context and the trailing metadata;
2. the bearer token (``auth.py``), from the same one pass over the metadata, BEFORE the body is decoded:
   the methods are registered without a request deserializer, so the wrapper gets the raw bytes;
3. decoding: a body over ``ServerLimits.max_message_bytes`` is RESOURCE_EXHAUSTED, one protobuf
   cannot parse INVALID_ARGUMENT, both with the call's request id (gRPC's own check, at a higher
   limit, would answer INTERNAL or RESOURCE_EXHAUSTED without one);
4. the servicer's coroutine (or async generator);
5. how it ended: metrics (method, code, latency) and a log line, and an exception becomes its status
   code via ``knnserve_client.wire.status``. A call the client cancelled, or whose deadline passed
   (grpc.aio cancels the call's task), is counted as CANCELLED or DEADLINE_EXCEEDED at INFO level,
   without a traceback: it is the caller's choice, not a failure.

Generated ``add_*Servicer_to_server`` functions register into a :class:`MethodTable` instead of the
server, so the wrapper applies to every service (knnserve.v1, the Open Inference Protocol, health,
reflection) without listing their methods here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio

from knnserve.service.auth import AUTHORIZATION, OPEN_METHOD_PREFIXES, WRITE_METHODS, Tokens
from knnserve.service.logs import request_id_var
from knnserve.service.metrics import ServiceMetrics
from knnserve.service.request_ids import accept_request_id
from knnserve_client.wire.errors import InvalidInputError, RequestTooLargeError
from knnserve_client.wire.status import REQUEST_ID_KEY, status_for

log = logging.getLogger("knnserve.service.rpc")
_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
Decode = Callable[[bytes], Any]
# How a method checks the token: not at all, as a read, or as a write.
OPEN, READ, WRITE = "open", "read", "write"


def kind_of(handler: grpc.RpcMethodHandler) -> str:
    """``unary_unary``, ``unary_stream``, ``stream_unary`` or ``stream_stream``."""
    for kind in _KINDS:
        if getattr(handler, kind) is not None:
            return kind
    raise ValueError("handler has no behaviour")


@dataclass(frozen=True)
class CallPolicy:
    """What every call gets: metrics, the tokens, the announced message limit."""

    metrics: ServiceMetrics | None
    tokens: Tokens
    max_message_bytes: int

    def access(self, method: str) -> str:
        """OPEN, READ or WRITE: which check ``method`` (``/package.Service/Method``) gets."""
        if method in WRITE_METHODS:
            return WRITE
        if method.startswith(OPEN_METHOD_PREFIXES) or not self.tokens.enabled:
            return OPEN
        return READ

    def decode(self, decode: Decode | None, data: bytes) -> Any:
        """The request message, or the call's error for a body over the limit or one that does not parse."""
        if decode is None:
            return data
        if len(data) > self.max_message_bytes:
            raise RequestTooLargeError(f"request: {len(data)} bytes exceed the limit of {self.max_message_bytes} bytes "
                                       "per message (ServerLimits.max_message_bytes)")
        try:
            return decode(data)
        except Exception as exc:  # protobuf raises DecodeError (and others) for bytes it cannot parse
            raise InvalidInputError("request", "a serialized protobuf message of the method's type",
                                    f"{len(data)} bytes that do not decode ({type(exc).__name__})") from None


class _Call:
    """One RPC's bookkeeping: request id, timer, token check, and how it ended."""

    __slots__ = ("context", "method", "metrics", "refusal", "request_id", "started", "var_token")

    def __init__(self, method: str, context: aio.ServicerContext, policy: CallPolicy, access: str) -> None:
        self.method = method
        self.context = context
        self.metrics = policy.metrics
        self.started = time.perf_counter()
        sent: list[str] = []
        authorization: list[str] = []
        wanted = {REQUEST_ID_KEY: sent, AUTHORIZATION: authorization}
        for key, value in context.invocation_metadata() or ():
            values = wanted.get(key)
            if values is not None:
                values.append(value if isinstance(value, str) else value.decode("latin-1"))
        self.request_id = accept_request_id(sent)
        self.var_token = request_id_var.set(self.request_id)
        context.set_trailing_metadata(((REQUEST_ID_KEY, self.request_id),))
        self.refusal: Exception | None = None
        if access != OPEN:
            tokens = policy.tokens
            self.refusal = tokens.write_problem(authorization) if access == WRITE else tokens.read_problem(authorization)

    def admit(self) -> None:
        """Raise the token refusal, if any (inside the call's try, so it is mapped and counted)."""
        if self.refusal is not None:
            raise self.refusal

    def _end(self, code: grpc.StatusCode) -> float:
        seconds = time.perf_counter() - self.started
        if self.metrics is not None:
            self.metrics.observe_request(self.method, code.name, seconds)
        return seconds

    def _fields(self, code: grpc.StatusCode, seconds: float) -> dict[str, Any]:
        return {"method": self.method, "code": code.name, "duration_ms": round(seconds * 1e3, 3), "request_id": self.request_id}

    def ok(self) -> None:
        seconds = self._end(grpc.StatusCode.OK)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("rpc ok", extra=self._fields(grpc.StatusCode.OK, seconds))

    def cancelled(self) -> None:
        """The call's task was cancelled: the client went away or its deadline passed."""
        remaining = self.context.time_remaining()
        code = grpc.StatusCode.DEADLINE_EXCEEDED if remaining is not None and remaining <= 0 else grpc.StatusCode.CANCELLED
        seconds = self._end(code)
        log.info("rpc ended by the caller: %s", code.name, extra=self._fields(code, seconds))

    def aborted(self) -> None:
        """The servicer aborted the call with its own status (the health guard does): count that status."""
        code = self.context.code()
        self._end(code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN)

    async def fail(self, error: Exception) -> None:
        """Record the failure and end the RPC with the mapped status; always raises."""
        mapped = status_for(error)
        seconds = self._end(mapped.code)
        if mapped.log_traceback:
            log.error("rpc failed: %s", error, exc_info=error, extra=self._fields(mapped.code, seconds))
        else:
            log.info("rpc rejected: %s", mapped.message, extra=self._fields(mapped.code, seconds))
        await self.context.abort(mapped.code, mapped.message, trailing_metadata=((REQUEST_ID_KEY, self.request_id),))

    def close(self) -> None:
        try:
            request_id_var.reset(self.var_token)
        except ValueError:  # a stream closed from another task's context: that context ends with it
            pass


def wrap(method: str, handler: grpc.RpcMethodHandler, policy: CallPolicy) -> grpc.RpcMethodHandler:
    """``handler`` (an async servicer method) behind the wrapper; the new handler takes raw request bytes."""
    kind = kind_of(handler)
    behavior = getattr(handler, kind)
    decode = handler.request_deserializer
    label = method.lstrip("/")
    access = policy.access(method)
    factory = getattr(grpc, f"{kind}_rpc_method_handler")

    def start(context: aio.ServicerContext) -> _Call:
        return _Call(label, context, policy, access)

    if kind.startswith("stream_"):
        async def requests(raw: AsyncIterator[bytes]) -> AsyncIterator[Any]:
            async for data in raw:
                yield policy.decode(decode, data)

    if kind.endswith("_unary"):

        async def unary_response(request: Any, context: aio.ServicerContext) -> Any:
            call = start(context)
            try:
                call.admit()
                response = await behavior(requests(request) if kind == "stream_unary" else policy.decode(decode, request),
                                          context)
            except asyncio.CancelledError:
                call.cancelled()
                raise
            except aio.AbortError:
                call.aborted()
                raise
            except Exception as error:  # every failure goes through status_for
                await call.fail(error)
            else:
                call.ok()
                return response
            finally:
                call.close()

        return factory(unary_response, request_deserializer=None, response_serializer=handler.response_serializer)

    async def streaming(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
        call = start(context)
        try:
            call.admit()
            inner = behavior(requests(request) if kind == "stream_stream" else policy.decode(decode, request), context)
            async for response in inner:
                yield response
        except (asyncio.CancelledError, GeneratorExit):
            call.cancelled()
            raise
        except aio.AbortError:
            call.aborted()
            raise
        except Exception as error:
            await call.fail(error)
        else:
            call.ok()
        finally:
            call.close()

    return factory(streaming, request_deserializer=None, response_serializer=handler.response_serializer)


class MethodTable:
    """Stands in for the server when generated ``add_*Servicer_to_server`` functions register their methods."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, grpc.RpcMethodHandler]] = {}

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        """What generated code calls with each service's handlers."""
        self.services.setdefault(service, {}).update(handlers)

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        """Generated code registers the same handlers generically too; the registered ones are used."""

    def install(self, server: aio.Server, policy: CallPolicy) -> None:
        """Register every collected method on ``server``, each behind the wrapper."""
        for service, handlers in self.services.items():
            wrapped = {name: wrap(f"/{service}/{name}", handler, policy) for name, handler in handlers.items()}
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, wrapped),))
            server.add_registered_method_handlers(service, wrapped)


__all__ = ["CallPolicy", "MethodTable", "kind_of", "wrap"]
