"""grpc.health.v1 on the asyncio server, with per-model entries behind the bearer token.

The overall service ("" and knnserve.v1.KnnServe) stays open, so load balancers and kubelet probes
work without the token; ``model/<name>`` answers only an authenticated caller when auth is on, so
the health service does not tell anyone which model names exist.

grpcio-health-checking's asyncio servicer keeps its statuses and watchers on the event loop; the
server changes them from other threads (loading, reloading, draining), so :meth:`set_from_thread`
and :meth:`shut_down_from_thread` hand the change to the loop and wait for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from knnserve.service.auth import AUTHORIZATION, bearer_problem

MODEL_PREFIX = "model/"
Status = health_pb2.HealthCheckResponse.ServingStatus.ValueType
# How long a thread waits for the loop to apply a status change.
SET_TIMEOUT_S = 10.0


def model_health_name(name: str) -> str:
    """The grpc.health.v1 service name that reports one model's readiness."""
    return f"{MODEL_PREFIX}{name}"


class GuardedHealthServicer(health_aio.HealthServicer):
    """grpcio's asyncio HealthServicer, with ``model/...`` services refused to callers without the token."""

    def __init__(self, loop: asyncio.AbstractEventLoop, token: str | None = None) -> None:
        super().__init__()
        self._loop = loop
        self._token = token

    async def _guard(self, request: health_pb2.HealthCheckRequest, context: aio.ServicerContext) -> None:
        if self._token is not None and request.service.startswith(MODEL_PREFIX):
            values = [value for key, value in context.invocation_metadata() or () if key == AUTHORIZATION]
            problem = bearer_problem(values, self._token)
            if problem is not None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"per-model health needs the bearer token: {problem}")

    async def Check(self, request: health_pb2.HealthCheckRequest,
                    context: aio.ServicerContext) -> health_pb2.HealthCheckResponse:
        await self._guard(request, context)
        return await super().Check(request, context)  # type: ignore[no-any-return]

    async def Watch(self, request: health_pb2.HealthCheckRequest,  # type: ignore[override]
                    context: aio.ServicerContext) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        """Every change of the service's status, starting with the current one (an async generator, as the
        RPC wrapper iterates; grpcio's own Watch writes through ``context.write`` instead)."""
        await self._guard(request, context)
        service = request.service
        condition = self._server_watchers[service]
        self._watcher_count_by_service[service] += 1
        last = None
        try:
            async with condition:
                while True:
                    status = self._server_status.get(service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN)
                    if status != last:
                        yield health_pb2.HealthCheckResponse(status=status)
                        last = status
                    await condition.wait()
        finally:
            self._watcher_count_by_service[service] -= 1
            if self._watcher_count_by_service[service] == 0:
                del self._server_watchers[service]
                del self._watcher_count_by_service[service]

    def status(self, service: str) -> Status | None:
        """The status ``service`` has now (None: unknown)."""
        return self._server_status.get(service)

    def set_from_thread(self, service: str, status: Status) -> None:
        """``set`` from a thread other than the loop's (loading, reloading)."""
        if self._running():
            asyncio.run_coroutine_threadsafe(self.set(service, status), self._loop).result(SET_TIMEOUT_S)
        elif not self._gracefully_shutting_down:
            self._server_status[service] = status  # no loop yet (or any more): nobody watches

    def shut_down_from_thread(self) -> None:
        """Every service NOT_SERVING for good (the start of shutdown)."""
        if self._running():
            asyncio.run_coroutine_threadsafe(self.enter_graceful_shutdown(), self._loop).result(SET_TIMEOUT_S)
        else:
            self._gracefully_shutting_down = True
            for service in self._server_status:
                self._server_status[service] = health_pb2.HealthCheckResponse.NOT_SERVING

    def _running(self) -> bool:
        return self._loop.is_running() and not self._loop.is_closed()


__all__ = ["MODEL_PREFIX", "GuardedHealthServicer", "model_health_name"]
