"""Server bootstrap: gRPC server, health, reflection, TLS, metrics endpoint, signals, graceful stop.

Lifecycle (``knnserve serve`` runs :meth:`KnnServer.run`)::

    start()        bind the port; health NOT_SERVING; calls get UNAVAILABLE until models load
    load_models()  load every bundle; health SERVING (overall and "model/<name>" per model)
    SIGHUP         reload(): new or changed versions swapped in, calls in flight unaffected
    SIGTERM/INT    stop(): health NOT_SERVING, no new calls, calls in flight get grace_s to finish
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from knnserve.dataplane import DataPlane, ModelRegistry, ReloadReport, searcher_factory
from knnserve.index import set_blas_threshold, set_num_threads
from knnserve.model import KNNModel
from knnserve.service.config import ServeConfig
from knnserve.service.interceptors import AuthInterceptor, ObservabilityInterceptor
from knnserve.service.metrics import ServiceMetrics
from knnserve.service.servicer import KnnServeServicer
from knnserve_client.wire.v1 import knnserve_pb2, knnserve_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = knnserve_pb2.DESCRIPTOR.services_by_name["KnnServe"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def model_health_name(name: str) -> str:
    """The grpc.health.v1 service name that reports one model's readiness."""
    return f"model/{name}"


class KnnServer:
    """One knnserve gRPC server: owns the registry, the grpc.Server, health and metrics."""

    def __init__(
        self,
        config: ServeConfig,
        *,
        metrics: ServiceMetrics | None = None,
        loader: Callable[[Path], KNNModel] = KNNModel.load,
    ) -> None:
        self.config = config
        self.metrics = metrics or ServiceMetrics()
        self.faiss_threads, self.grpc_workers = config.threads.resolve(config.batching.enabled)
        threads = self.faiss_threads
        self.registry = ModelRegistry(
            models_dir=config.models_dir,
            model_dir=config.model_dir,
            make_searcher=searcher_factory(
                config.batching, observer=self.metrics, on_thread_start=lambda: set_num_threads(threads)
            ),
            loader=loader,
        )
        self.plane = DataPlane(self.registry, config.limits)
        self.health = health.HealthServicer()
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._server: grpc.Server | None = None
        self._model_names: set[str] = set()
        self._stop_requested = False
        self._reload_requested = False

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> int:
        """Bind and start serving (health NOT_SERVING until :meth:`load_models`); returns the port."""
        config = self.config
        threads = self.faiss_threads
        # Process-wide FAISS setting: this process serves, so the server's choice wins.
        set_blas_threshold(config.blas_threshold)
        # OpenMP's thread count is per calling thread: set it in every worker that may search.
        executor = ThreadPoolExecutor(
            max_workers=self.grpc_workers, thread_name_prefix="grpc-worker", initializer=set_num_threads, initargs=(threads,)
        )
        interceptors: list[grpc.ServerInterceptor] = [ObservabilityInterceptor(self.metrics)]
        if config.token is not None:
            interceptors.append(AuthInterceptor(config.token))
        server = grpc.server(
            executor,
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", config.limits.max_message_bytes),
                ("grpc.max_send_message_length", -1),  # responses are bounded by max_neighbors_per_request
                ("grpc.so_reuseport", 0),  # never share a port with another server by accident
            ],
        )
        knnserve_pb2_grpc.add_KnnServeServicer_to_server(KnnServeServicer(self.plane), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        for name in ("", SERVICE_NAME):
            self.health.set(name, NOT_SERVING)
        if config.reflection:
            names = (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
            reflection.enable_server_reflection(names, server)
        address = f"{config.host}:{config.port}"
        if config.tls is not None:
            credentials = grpc.ssl_server_credentials([(config.tls.key.read_bytes(), config.tls.cert.read_bytes())])
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"could not bind {address} (in use, or not an address of this machine)")
        server.start()
        self._server, self.port = server, port
        if config.metrics_port is not None:
            self.metrics_port = self.metrics.serve(config.metrics_port, config.metrics_host)
        log.info(
            "listening",
            extra={"address": f"{config.host}:{port}", "tls": config.tls is not None, "auth": config.token is not None,
                   "faiss_threads": self.faiss_threads, "grpc_workers": self.grpc_workers,
                   "batching": config.batching.enabled, "metrics_port": self.metrics_port},
        )
        return port

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
                   "kept": len(report.kept), "failed": [f"{n}:{v}" for n, v, _ in report.failed]},
        )
        return report

    def _update_health(self) -> None:
        table = self.registry.snapshot()
        for name in table:
            self.health.set(model_health_name(name), SERVING)
        for name in self._model_names - set(table):
            self.health.set(model_health_name(name), NOT_SERVING)
        self._model_names = set(table)
        self.metrics.models_loaded.set(sum(len(versions) for versions in table.values()))
        status = SERVING if self.registry.ready else NOT_SERVING
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)

    def stop(self, grace: float | None = None) -> None:
        """Graceful stop: health NOT_SERVING, refuse new calls, let calls in flight finish within ``grace``."""
        grace = self.config.grace_s if grace is None else grace
        self.health.enter_graceful_shutdown()
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        self.registry.close()
        self.metrics.stop()
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

    def run(self, *, on_ready: Callable[[KnnServer], None] | None = None, poll_s: float = 0.1) -> None:
        """start(), load_models(), then serve until SIGTERM/SIGINT (SIGHUP reloads); then stop()."""
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in handled}
        try:
            self.start()
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
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.stop()


__all__ = ["KnnServer", "NOT_SERVING", "SERVICE_NAME", "SERVING", "model_health_name"]
