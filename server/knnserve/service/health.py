"""grpc.health.v1 with per-model entries behind the bearer token.

The overall service ("" and knnserve.v1.KnnServe) stays open, so load balancers and kubelet probes
work without the token; ``model/<name>`` answers only an authenticated caller when auth is on, so
the health service does not tell anyone which model names exist.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
from grpc_health.v1 import health, health_pb2

from knnserve.service.auth import token_problem

MODEL_PREFIX = "model/"


def model_health_name(name: str) -> str:
    """The grpc.health.v1 service name that reports one model's readiness."""
    return f"{MODEL_PREFIX}{name}"


class GuardedHealthServicer(health.HealthServicer):
    """grpcio's HealthServicer, with ``model/...`` services refused to callers without the token."""

    def __init__(self, token: str | None = None) -> None:
        super().__init__()
        self._token = token

    def _guard(self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext) -> None:
        if self._token is not None and request.service.startswith(MODEL_PREFIX):
            problem = token_problem(context, self._token)
            if problem is not None:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, f"per-model health needs the bearer token: {problem}")

    def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext) -> health_pb2.HealthCheckResponse:
        self._guard(request, context)
        return super().Check(request, context)

    def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext,
              send_response_callback: object = None) -> Iterator[health_pb2.HealthCheckResponse]:
        self._guard(request, context)
        return super().Watch(request, context, send_response_callback)  # type: ignore[arg-type]


__all__ = ["MODEL_PREFIX", "GuardedHealthServicer", "model_health_name"]
