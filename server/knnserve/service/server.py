"""Server bootstrap: gRPC server, health, reflection, TLS, metrics endpoint, signals, graceful stop.

Lifecycle (``knnserve serve`` runs :meth:`KnnServer.run`)::

    start()        bind the port; health NOT_SERVING; calls get UNAVAILABLE until models load
    load_models()  load every bundle; health SERVING (overall and "model/<name>" per model)
    SIGHUP         reload(): new or changed versions swapped in, calls in flight unaffected
    SIGTERM/INT    stop(): health NOT_SERVING while the listener still accepts calls for drain_s
                   (load balancers see it and stop sending), then no new calls, and calls in
                   flight get grace_s to finish

With ``http_port`` set, the Open Inference Protocol's REST binding (``rest/``, aiohttp) serves beside
it on the same event loop, ready and draining with the same health.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import grpc
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2 as reflection_v1alpha

from knnserve.dataplane import DataPlane, ModelRegistry, ReloadReport, searcher_factory
from knnserve.index import set_blas_threshold, set_num_threads
from knnserve.model import KNNModel
from knnserve.service.auth import Tokens
from knnserve.service.config import ServeConfig
from knnserve.service.health import GuardedHealthServicer, model_health_name
from knnserve.service.loop import LoopThread
from knnserve.service.metrics import ServiceMetrics
from knnserve.service.open_inference import OpenInferenceServicer
from knnserve.service.open_inference import SERVICE_NAME as OPEN_INFERENCE_SERVICE
from knnserve.service.rpc import CallPolicy, MethodTable
from knnserve.service.servicer import KnnServeServicer
from knnserve_client.wire.inference import grpc_predict_v2_pb2_grpc
from knnserve_client.wire.v1 import knnserve_pb2, knnserve_pb2_grpc

if TYPE_CHECKING:
    from knnserve.service.rest.endpoint import HttpEndpoint

log = logging.getLogger(__name__)

SERVICE_NAME = knnserve_pb2.DESCRIPTOR.services_by_name["KnnServe"].full_name
HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
# Tools as new as grpcurl 1.9 ask for grpc.reflection.v1 first; grpcio-reflection serves only
# v1alpha. The two protocols' messages have the same fields and numbers, so the v1alpha servicer
# answers v1 requests byte for byte (see add_reflection).
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# gRPC's own receive limit, above the announced one: bodies in between are refused by the RPC
# wrapper with RESOURCE_EXHAUSTED and the call's request id; only larger ones meet gRPC's own
# check (RESOURCE_EXHAUSTED without one), which keeps a client from making the server buffer
# arbitrarily large messages.
RECEIVE_LIMIT_FACTOR = 4
# How long start() waits for the loop to bind the port.
START_TIMEOUT_S = 30.0


def add_reflection(table: MethodTable, names: tuple[str, ...]) -> None:
    """Server reflection under both grpc.reflection.v1alpha (grpcio-reflection) and grpc.reflection.v1."""
    servicer = reflection.aio.ReflectionServicer((*names, reflection.SERVICE_NAME, REFLECTION_V1))
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, table)  # type: ignore[arg-type]
    v1 = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_v1alpha.ServerReflectionRequest.FromString,
        response_serializer=reflection_v1alpha.ServerReflectionResponse.SerializeToString,
    )
    table.add_registered_method_handlers(REFLECTION_V1, {"ServerReflectionInfo": v1})


# The large lane's thread runs at the lowest CPU priority: a request over the batch budget gets
# the CPU the batches of everybody else's small requests leave, never theirs.
LARGE_LANE_NICE = 19


def large_lane_thread() -> None:
    """Set up the thread of the lane for requests over the batch budget: one FAISS thread, lowest priority."""
    set_num_threads(1)
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LARGE_LANE_NICE)  # Linux: per thread
    except (AttributeError, OSError) as exc:
        log.warning("could not lower the large-request lane's priority: %s", exc)


class KnnServer:
    """One knnserve gRPC server: owns the event loop, the registry, the data plane, the aio server, health and metrics.

    Every call is a task on one asyncio loop (``loop.py``, a thread of its own): a call waiting for
    its batch holds no thread. Searches run on each model version's search lane (``dataplane/batcher.py``);
    writes and, with batching off, searches run on ``blocking``, a small pool sized to the cores.
    """

    def __init__(
        self,
        config: ServeConfig,
        *,
        metrics: ServiceMetrics | None = None,
        loader: Callable[[Path], KNNModel] | None = None,
        on_ready_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or ServiceMetrics()
        self.faiss_threads, self.blocking_threads = config.threads.resolve(config.batching.enabled, config.cores)
        self._on_ready_change = on_ready_change
        if loader is None:
            # A model that takes writes holds its index in memory: FAISS cannot add to a mapped one.
            loader = functools.partial(KNNModel.load, mmap=config.mmap and config.online is None,
                                       extractor_threads=config.cores, kernel=config.kernel)
        threads = self.faiss_threads
        self._loop = LoopThread(kind=config.event_loop)
        # With batching off every search runs here, one FAISS thread each; else writes and snapshots do.
        blocking_faiss = 1 if not config.batching.enabled else threads
        self.blocking = ThreadPoolExecutor(max_workers=self.blocking_threads, thread_name_prefix="blocking",
                                           initializer=set_num_threads, initargs=(blocking_faiss,))
        self.registry = ModelRegistry(
            models_dir=config.models_dir,
            model_dir=config.model_dir,
            make_searcher=searcher_factory(
                config.batching, self._loop.loop, pool=self.blocking, observer=self.metrics,
                on_thread_start=lambda: set_num_threads(threads), on_large_thread_start=large_lane_thread,
            ),
            loader=loader,
            online=config.online,
        )
        self.plane = DataPlane(self.registry, config.limits)
        self.health = GuardedHealthServicer(self._loop.loop, config.token)
        self.port: int | None = None
        self.metrics_port: int | None = None
        self.http_port: int | None = None
        self._server: aio.Server | None = None
        self._http: HttpEndpoint | None = None
        self._model_names: set[str] = set()
        self._stop_requested = False
        self._reload_requested = False
        self._draining = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> int:
        """Bind and start serving (health NOT_SERVING until :meth:`load_models`); returns the port."""
        config = self.config
        # Process-wide FAISS setting: this process serves, so the server's choice wins.
        set_blas_threshold(config.blas_threshold)
        for name in ("", SERVICE_NAME):
            self.health.set_from_thread(name, NOT_SERVING)
        self._loop.start()
        try:
            self.port = self._loop.call(self._start_grpc(), START_TIMEOUT_S)
        except BaseException:
            self._loop.stop()
            raise
        if config.metrics_port is not None:
            self.metrics_port = self.metrics.serve(config.metrics_port, config.metrics_host, ready=self.ready)
        log.info(
            "listening",
            extra={"address": f"{config.host}:{self.port}", "tls": config.tls is not None, "auth": config.token is not None,
                   "writes": config.online is not None, "faiss_threads": self.faiss_threads,
                   "blocking_threads": self.blocking_threads, "batching": config.batching.enabled,
                   "event_loop": type(self._loop.loop).__module__.split(".")[0],
                   "metrics_port": self.metrics_port, "http_port": self.http_port},
        )
        return self.port

    async def _start_grpc(self) -> int:
        """On the loop: build the aio server, every service behind the RPC wrapper, bind, start."""
        config = self.config
        # The loop's thread searches too (requests too cheap to hand to a lane): OpenMP's count is per thread.
        set_num_threads(self.faiss_threads)
        # asyncio.to_thread (writes, snapshots, the REST binding's large bodies) runs on the pool for blocking work.
        asyncio.get_running_loop().set_default_executor(self.blocking)
        limit = config.limits.max_message_bytes
        server = aio.server(
            options=[
                ("grpc.max_receive_message_length", RECEIVE_LIMIT_FACTOR * limit),
                ("grpc.max_send_message_length", -1),  # responses are bounded by max_neighbors_per_request
                # Never share a port with another server by accident; a --workers server's processes do.
                ("grpc.so_reuseport", 1 if config.reuse_port else 0),
            ],
        )
        table = MethodTable()
        knnserve_pb2_grpc.add_KnnServeServicer_to_server(KnnServeServicer(self.plane), table)  # type: ignore[arg-type]
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
            OpenInferenceServicer(self.plane, ready=self.ready), table)  # type: ignore[arg-type]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, table)  # type: ignore[arg-type]
        if config.reflection:
            add_reflection(table, (SERVICE_NAME, OPEN_INFERENCE_SERVICE, HEALTH_SERVICE_NAME))
        table.install(server, CallPolicy(self.metrics, Tokens(config.token, config.write_token), limit))
        address = f"{config.host}:{config.port}"
        if config.tls is not None:
            credentials = grpc.ssl_server_credentials([(config.tls.key.read_bytes(), config.tls.cert.read_bytes())])
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"could not bind {address} (in use, or not an address of this machine)")
        await server.start()
        if config.http_port is not None:
            try:
                self._http = await self._start_http()
            except BaseException:
                await server.stop(0)
                raise
            self.http_port = self._http.port
        self._server = server
        return port

    async def _start_http(self) -> HttpEndpoint:
        """On the loop: the Open Inference Protocol's REST endpoint (``rest/``), beside the gRPC server."""
        from knnserve.service.rest.endpoint import start_http

        config = self.config
        tls = (config.tls.cert, config.tls.key) if config.tls is not None else None
        return await start_http(
            self.plane, ready=self.ready, host=config.rest_host, port=config.http_port or 0, metrics=self.metrics,
            token=config.token, write_token=config.write_token, max_body_bytes=config.limits.max_message_bytes, tls=tls,
            reuse_port=config.reuse_port)

    @staticmethod
    async def _close_listeners(server: aio.Server, http: HttpEndpoint | None, grace: float) -> None:
        """Both listeners close at once; calls in flight on either get the same grace."""
        closing = [server.stop(grace)]
        if http is not None:
            closing.append(http.close(grace))
        await asyncio.gather(*closing)

    def ready(self) -> bool:
        """True exactly when health "" is SERVING: models loaded and not shutting down."""
        return self.registry.ready and not self._draining.is_set()

    def health_status(self, service: str) -> int | None:
        """What grpc.health.v1 answers for ``service`` now (None: unknown)."""
        return self.health.status(service)

    def load_models(self) -> ReloadReport:
        """Initial load; health turns SERVING. Raises BundleError when nothing can be served."""
        return self.reload()

    def reload(self) -> ReloadReport:
        """Rescan the models folder and swap in new versions (what SIGHUP does); health follows."""
        report = self.registry.reload()
        self._update_health()
        log.info(
            "models loaded",
            extra={"loaded": [f"{n}:{v}" for n, v in report.loaded], "unloaded": [f"{n}:{v}" for n, v in report.unloaded],
                   "kept": len(report.kept), "failed": [f"{n}:{v}" for n, v, _ in report.failed],
                   "skipped_unchanged": [f"{n}:{v}" for n, v in report.skipped]},
        )
        return report

    def _update_health(self) -> None:
        if self._draining.is_set():
            return  # NOT_SERVING until the process exits
        table = self.registry.snapshot()
        for name in table:
            self.health.set_from_thread(model_health_name(name), SERVING)
        for name in self._model_names - set(table):
            self.health.set_from_thread(model_health_name(name), NOT_SERVING)
        self._model_names = set(table)
        self.metrics.models_loaded.set(sum(len(versions) for versions in table.values()))
        ready = self.ready()
        status = SERVING if ready else NOT_SERVING
        for name in ("", SERVICE_NAME):
            self.health.set_from_thread(name, status)
        self._tell_ready(ready)

    def _tell_ready(self, ready: bool) -> None:
        if ready and self._server is None:
            return  # models loaded before start() (run(load_first=True)): ready once the ports are bound
        if self._on_ready_change is not None:
            self._on_ready_change(ready)

    def drain(self, seconds: float | None = None) -> None:
        """Health NOT_SERVING everywhere while calls are still accepted, for ``seconds`` (default: drain_s)."""
        self._draining.set()
        self.health.shut_down_from_thread()
        self._tell_ready(False)
        wait = self.config.drain_s if seconds is None else seconds
        if wait > 0:
            log.info("draining: health NOT_SERVING, still accepting calls", extra={"seconds": wait})
            time.sleep(wait)

    def stop(self, grace: float | None = None) -> None:
        """Graceful stop: health NOT_SERVING, refuse new calls, let calls in flight finish within ``grace``."""
        grace = self.config.grace_s if grace is None else grace
        self._draining.set()
        self.health.shut_down_from_thread()
        self._tell_ready(False)
        if self._server is not None:
            server, http = self._server, self._http
            self._server = self._http = None
            self._loop.call(self._close_listeners(server, http, grace))
        self.registry.close()
        self.metrics.stop()
        self.blocking.shutdown(wait=False, cancel_futures=True)
        self._loop.stop()
        log.info("stopped")

    # -- the process's main loop --------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop (what SIGTERM and SIGINT do)."""
        self._stop_requested = True

    def request_reload(self) -> None:
        """Ask :meth:`run` to reload (what SIGHUP does)."""
        self._reload_requested = True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only set flags: a signal handler must not take locks the interrupted code may hold.
        if signum == signal.SIGHUP:
            self.request_reload()
        else:
            self.request_stop()

    def run(self, *, on_ready: Callable[[KnnServer], None] | None = None, poll_s: float = 0.1,
            load_first: bool = False) -> None:
        """start(), load_models(), then serve until SIGTERM/SIGINT (SIGHUP reloads); then drain() and stop().

        ``load_first``: load the models before binding the port, so no connection reaches this
        process before it can answer (the workers of a --workers server share a port: a worker
        that is still loading would otherwise get its share of new connections and answer them
        UNAVAILABLE).
        """
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in handled}
        started = False
        try:
            if load_first:
                self.load_models()
                self.start()
                started = True
                self._update_health()
            else:
                self.start()
                started = True
                self.load_models()
            if on_ready is not None:
                on_ready(self)
            while not self._stop_requested:
                time.sleep(poll_s)
                if self._reload_requested:
                    self._reload_requested = False
                    try:
                        self.reload()
                    except Exception:  # a failed reload must not take the server down
                        log.exception("reload failed; the models already loaded keep serving")
            self.drain()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if started:
                self.stop()


__all__ = ["HEALTH_SERVICE_NAME", "NOT_SERVING", "SERVICE_NAME", "SERVING", "KnnServer", "add_reflection", "model_health_name"]
