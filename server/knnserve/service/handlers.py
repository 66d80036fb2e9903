"""Rebuilding gRPC method handlers: the same kind and serializers with another behaviour or deserializer."""

from __future__ import annotations

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


def metadata_values(source: grpc.HandlerCallDetails | grpc.ServicerContext, key: str) -> list[str]:
    """Every value of one metadata key, in order (a key may be sent more than once)."""
    pairs = source.invocation_metadata if isinstance(source, grpc.HandlerCallDetails) else source.invocation_metadata()
    return [value if isinstance(value, str) else value.decode("latin-1") for name, value in pairs or () if name == key]


__all__ = ["kind_of", "metadata_values", "rebuild"]
