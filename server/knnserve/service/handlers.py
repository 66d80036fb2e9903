"""Rebuilding gRPC method handlers: the same kind and serializers with another behaviour or deserializer,
built once per method (``WrappedHandlers``), not once per call."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc

_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def kind_of(handler: grpc.RpcMethodHandler) -> str:
    """``unary_unary``, ``unary_stream``, ``stream_unary`` or ``stream_stream``."""
    for kind in _KINDS:
        if getattr(handler, kind) is not None:
            return kind
    raise ValueError("handler has no behaviour")


def rebuild(
    handler: grpc.RpcMethodHandler, behavior: Callable[..., Any], *, deserializer: Callable[[bytes], Any] | None = None
) -> grpc.RpcMethodHandler:
    """A handler of the same kind and response serializer as ``handler``, with ``behavior`` (and a deserializer)."""
    factory = getattr(grpc, f"{kind_of(handler)}_rpc_method_handler")
    return factory(
        behavior,
        request_deserializer=deserializer if deserializer is not None else handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class WrappedHandlers:
    """An interceptor's wrapped handlers, one per (method, inner handler).

    ``intercept_service`` runs on gRPC's polling thread for every call, under the server's lock;
    wrapping a handler there on every call (closures, a new RpcMethodHandler) was measurable per
    request. The wrappers depend only on the method and the handler they wrap, so they are built once.
    """

    def __init__(self) -> None:
        self._built: dict[tuple[str, int], tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}
        self._lock = threading.Lock()

    def get(self, method: str, handler: grpc.RpcMethodHandler,
            build: Callable[[grpc.RpcMethodHandler], grpc.RpcMethodHandler]) -> grpc.RpcMethodHandler:
        """The wrapper of ``handler`` for ``method``, built by ``build(handler)`` the first time."""
        key = (method, id(handler))
        found = self._built.get(key)
        if found is not None and found[0] is handler:
            return found[1]
        wrapped = build(handler)
        with self._lock:
            self._built[key] = (handler, wrapped)  # the inner handler stays referenced: its id stays unique
        return wrapped


def metadata_values(source: grpc.HandlerCallDetails | grpc.ServicerContext, key: str) -> list[str]:
    """Every value of one metadata key, in order (a key may be sent more than once)."""
    pairs = source.invocation_metadata if isinstance(source, grpc.HandlerCallDetails) else source.invocation_metadata()
    return [value if isinstance(value, str) else value.decode("latin-1") for name, value in pairs or () if name == key]


__all__ = ["WrappedHandlers", "kind_of", "metadata_values", "rebuild"]
