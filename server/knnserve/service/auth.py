"""Bearer-token authentication: the one check (RFC 6750 header, scheme case-insensitive per RFC 7235),
applied to every RPC by AuthInterceptor and to per-model health checks by the health servicer.

Two tokens: the read token (``--token-file``; unset: reads are open) and the write token
(``--write-token-file``), which the write RPCs need (``WRITE_METHODS``) and which reads accept too.
A write with the read token is refused with PERMISSION_DENIED; one with no or a wrong token with
UNAUTHENTICATED; any write to a server without a write token with PERMISSION_DENIED.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from knnserve.service.handlers import metadata_values, rebuild
from knnserve_client.wire.errors import TokenRejectedError, WriteRefusedError

AUTHORIZATION = "authorization"
# Open without a token, so load balancers and probes work: the overall health ("" and the service
# name; per-model health is checked in the health servicer itself) and the Open Inference
# Protocol's server liveness, readiness (KServe's probes) and metadata (name, version), which name
# no model: the same three the REST binding leaves open (GET /v2, /v2/health/live, /v2/health/ready).
OPEN_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
    "/inference.GRPCInferenceService/ServerMetadata",
)
WRITE_METHODS = frozenset(
    f"/knnserve.v1.KnnServe/{name}" for name in ("AddExamples", "RemoveExamples", "SnapshotModel")
)


def token_problem(source: grpc.HandlerCallDetails | grpc.ServicerContext, token: str) -> str | None:
    """Why the call's credentials are refused, or None when they carry exactly the expected bearer token."""
    return bearer_problem(metadata_values(source, AUTHORIZATION), token)


def bearer_problem(values: Sequence[str], token: str) -> str | None:
    """Why these ``authorization`` values (gRPC metadata or HTTP headers) are refused, or None for exactly one
    ``Bearer <token>``."""
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


def write_problem(source: grpc.HandlerCallDetails, token: str | None, write_token: str | None) -> Exception | None:
    """Why a write call is refused (WriteRefusedError or TokenRejectedError), or None when it carries the write token."""
    if write_token is None:
        return WriteRefusedError("this server takes no writes (start it with --online-dir DIR --write-token-file FILE)")
    problem = token_problem(source, write_token)
    if problem is None:
        return None
    if token is not None and token_problem(source, token) is None:
        return WriteRefusedError("the read token cannot write: send the write token (--write-token-file)")
    return TokenRejectedError(f"{problem} (writes need the write token)")


class AuthInterceptor(grpc.ServerInterceptor):
    """Rejects calls without the right bearer token before their body is even decoded.

    ``token`` guards reads (None: open); ``write_token`` guards ``WRITE_METHODS`` and opens reads too.
    """

    def __init__(self, token: str | None, *, write_token: str | None = None,
                 open_prefixes: tuple[str, ...] = OPEN_METHOD_PREFIXES) -> None:
        self._token = token
        self._write_token = write_token
        self._open = open_prefixes

    def _refusal(self, details: grpc.HandlerCallDetails) -> Exception | None:
        if details.method in WRITE_METHODS:
            return write_problem(details, self._token, self._write_token)
        if self._token is None:
            return None
        problem = token_problem(details, self._token)
        if problem is None or (self._write_token is not None and token_problem(details, self._write_token) is None):
            return None
        return TokenRejectedError(problem)

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(self._open):
            return handler
        problem = self._refusal(handler_call_details)
        if problem is None:
            return handler
        error = problem

        def reject(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
            raise error

        return rebuild(handler, reject, deserializer=_ignore_body)


__all__ = ["AUTHORIZATION", "OPEN_METHOD_PREFIXES", "WRITE_METHODS", "AuthInterceptor", "bearer_problem", "token_problem", "write_problem"]
