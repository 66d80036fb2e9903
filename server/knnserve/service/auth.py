"""Bearer-token authentication: the one check (RFC 6750 header, scheme case-insensitive per RFC 7235),
applied to every RPC by AuthInterceptor and to per-model health checks by the health servicer."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import grpc

from knnserve.service.handlers import metadata_values, rebuild
from knnserve_client.wire.errors import TokenRejectedError

AUTHORIZATION = "authorization"
# Open without a token, so load balancers and probes work: the overall health ("" and the service
# name; per-model health is checked in the health servicer itself) and the Open Inference
# Protocol's server liveness and readiness (KServe's probes), which name no model.
OPEN_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
)


def token_problem(source: grpc.HandlerCallDetails | grpc.ServicerContext, token: str) -> str | None:
    """Why the call's credentials are refused, or None when they carry exactly the expected bearer token."""
    values = metadata_values(source, AUTHORIZATION)
    if not values:
        return "missing bearer token (metadata authorization: Bearer <token>)"
    if len(values) > 1:
        return f"{len(values)} authorization headers; send exactly one"
    scheme, _, sent = values[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not sent.strip():
        return "expected the Bearer scheme: authorization: Bearer <token>"
    # compare_digest: the time taken must not reveal how much of the token matched.
    if not hmac.compare_digest(sent.strip().encode("utf-8", "replace"), token.encode("utf-8")):
        return "wrong bearer token"
    return None


_UNREAD = object()


def _ignore_body(data: bytes) -> object:
    # Not None: gRPC takes a None from a deserializer for a failure to decode (INTERNAL).
    return _UNREAD


class AuthInterceptor(grpc.ServerInterceptor):
    """Rejects calls without the bearer token before their body is even decoded (UNAUTHENTICATED)."""

    def __init__(self, token: str, *, open_prefixes: tuple[str, ...] = OPEN_METHOD_PREFIXES) -> None:
        self._token = token
        self._open = open_prefixes

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(self._open):
            return handler
        problem = token_problem(handler_call_details, self._token)
        if problem is None:
            return handler

        def reject(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
            raise TokenRejectedError(problem)

        return rebuild(handler, reject, deserializer=_ignore_body)


__all__ = ["AUTHORIZATION", "OPEN_METHOD_PREFIXES", "AuthInterceptor", "token_problem"]
