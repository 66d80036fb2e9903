"""Prometheus metrics of the service, in a registry of their own, exported on an HTTP port."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

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
        self.models_loaded = Gauge("knnserve_model_versions_loaded", "Model versions being served", registry=self.registry)
        self._http: WSGIServer | None = None
        self._http_thread: threading.Thread | None = None

    def observe_request(self, method: str, code: str, seconds: float) -> None:
        """Count one finished RPC and its latency."""
        self.requests.labels(method=method, code=code).inc()
        self.latency.labels(method=method).observe(seconds)

    def observe_batch(self, model: str, rows: int, requests: int) -> None:
        """One FAISS search of ``rows`` rows merged from ``requests`` requests."""
        self.batch_rows.labels(model=model).observe(rows)
        self.batch_requests.labels(model=model).observe(requests)

    def observe_queue_wait(self, model: str, seconds: float) -> None:
        """Time one request waited for its batch."""
        self.queue_wait.labels(model=model).observe(seconds)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Start the /metrics HTTP endpoint in a daemon thread; returns the bound port (port 0 picks one)."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._http, self._http_thread = server, thread
        return int(server.server_port)

    def stop(self) -> None:
        """Stop the HTTP endpoint, if it runs."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


__all__ = ["ServiceMetrics"]
