"""Prometheus metrics of the service, in a registry of their own, exported on an HTTP port."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

METRICS_PATH = "/metrics"
# Plain-HTTP probes beside the metrics, for what cannot speak gRPC over TLS (kubelet's gRPC probes,
# Docker's HEALTHCHECK without extra binaries): alive while the process serves HTTP; ready exactly
# when grpc.health.v1 "" is SERVING.
LIVE_PATH = "/livez"
READY_PATH = "/readyz"

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)
WAIT_BUCKETS = (0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5)


class ServiceMetrics:
    """Requests by method and status, latency, batch sizes, queue wait, models loaded.

    A registry per instance (not prometheus_client's global one) so that several servers can
    live in one process, as they do in the tests.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "knnserve_requests", "RPCs finished, by method and status code", ["method", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "knnserve_request_latency_seconds",
            "RPC wall time in the server, by method",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "knnserve_batch_rows", "Rows per FAISS search (after dynamic batching)", ["model"], buckets=ROW_BUCKETS,
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "knnserve_batch_requests", "Requests merged into one FAISS search", ["model"], buckets=ROW_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "knnserve_queue_wait_seconds", "Time a request waited for its batch", ["model"], buckets=WAIT_BUCKETS,
            registry=self.registry,
        )
        # Every process of a --workers server serves the same versions: its live maximum is the figure.
        self.models_loaded = Gauge("knnserve_model_versions_loaded", "Model versions being served", registry=self.registry,
                                   multiprocess_mode="livemax")
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._http: WSGIServer | None = None

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: prometheus_client's lookup takes a lock and builds a
        tuple on every call, and these run several times per request."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe_request(self, method: str, code: str, seconds: float) -> None:
        """Count one finished RPC and its latency."""
        self._child(self.requests, method, code).inc()
        self._child(self.latency, method).observe(seconds)

    def observe_batch(self, model: str, rows: int, requests: int) -> None:
        """One FAISS search of ``rows`` rows merged from ``requests`` requests."""
        self._child(self.batch_rows, model).observe(rows)
        self._child(self.batch_requests, model).observe(requests)

    def observe_queue_wait(self, model: str, seconds: float) -> None:
        """Time one request waited for its batch."""
        self._child(self.queue_wait, model).observe(seconds)

    def serve(self, port: int, host: str = "127.0.0.1", *, ready: Callable[[], bool] = lambda: True) -> int:
        """Serve ``/metrics``, ``/livez`` and ``/readyz`` (other paths are 404) over HTTP in a daemon thread.

        Returns the bound port (port 0 picks one).
        """
        self._http = serve_http(self.registry, port, host, ready=ready)
        return int(self._http.server_port)

    def stop(self) -> None:
        """Stop the HTTP endpoint, if it runs."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


def serve_http(registry: CollectorRegistry, port: int, host: str, *, ready: Callable[[], bool],
               live: Callable[[], bool] = lambda: True) -> WSGIServer:
    """``/metrics`` of ``registry``, ``/livez`` and ``/readyz`` over HTTP in a daemon thread; the bound server."""
    server = make_server(host, port, routes(make_wsgi_app(registry), ready, live), ThreadingWSGIServer,
                         handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server


def multiprocess_registry(path: str) -> CollectorRegistry:
    """A registry that reads the metrics every process of a ``--workers`` server writes under ``path``
    (prometheus_client's multiprocess mode: counters and histograms summed over the processes)."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path)
    return registry


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (the server logs JSON lines there)."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return


def _text(start_response: Callable[..., Any], status: str, body: str) -> Iterable[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
    return [body.encode()]


def routes(metrics: Callable[..., Iterable[bytes]], ready: Callable[[], bool],
           live: Callable[[], bool] = lambda: True) -> Callable[..., Iterable[bytes]]:
    """A WSGI app: ``/metrics`` (Prometheus), ``/livez`` and ``/readyz`` (200 or 503); 404 elsewhere."""

    def routed(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == METRICS_PATH:
            return metrics(environ, start_response)
        if path == LIVE_PATH:
            return _text(start_response, "200 OK", "live\n") if live() else _text(start_response, "503 Service Unavailable", "not live\n")
        if path == READY_PATH:
            return _text(start_response, "200 OK", "ready\n") if ready() else _text(start_response, "503 Service Unavailable", "not ready\n")
        return _text(start_response, "404 Not Found", f"not found; metrics at {METRICS_PATH}, probes at {LIVE_PATH} and {READY_PATH}\n")

    return routed


__all__ = ["LIVE_PATH", "METRICS_PATH", "READY_PATH", "ServiceMetrics", "multiprocess_registry", "routes", "serve_http"]
