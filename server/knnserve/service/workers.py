"""``knnserve serve --workers N``: N server processes on one port, under one supervisor.

One Python process serves requests on one interpreter lock; a machine with more cores than one
process keeps busy takes several. The supervisor (this module, the process ``knnserve serve``
started) never creates a gRPC object itself; it

* reserves the port (a socket bound with SO_REUSEPORT, so port 0 works too) and starts N worker
  processes (``spawn``: fresh interpreters, nothing inherited from this one), each a whole
  :class:`KnnServer` bound to that port with SO_REUSEPORT, so the kernel spreads connections over
  them (grpcio's own multiprocessing example does the same);
* gives each worker its share of the cores for FAISS and gRPC threads, and has them map the index
  files (``ServeConfig.mmap``), so N processes hold one copy of an index's pages, not N;
* serves the metrics port itself: ``/metrics`` summed over the workers (prometheus_client's
  multiprocess mode, a temporary folder under ``PROMETHEUS_MULTIPROC_DIR``), ``/readyz`` ready
  exactly when every worker is (each reports its grpc.health.v1 "" state through shared memory),
  ``/livez`` live while every worker runs;
* forwards SIGHUP (reload) to every worker, and on SIGTERM/SIGINT makes ``/readyz`` fail, forwards
  the signal (each worker drains and stops as a single server does) and waits for all of them;
* restarts a worker that dies after it was ready; a worker that fails before it ever was ready
  (a bundle error, a port in use) stops the whole server with its exit status.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import replace
from types import FrameType
from typing import Any

from knnserve.errors import InvalidInputError
from knnserve.service.config import ServeConfig

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A worker that dies this soon after its previous start is not restarted again at once.
RESTART_BACKOFF_S = 1.0


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) with SO_REUSEPORT, not listening: it holds the port (and picks
    one for port 0) until the workers have bound it too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        holder.bind((host, port))
    except OSError as exc:
        holder.close()
        raise InvalidInputError("--port", "a port this server can bind", f"{host}:{port} ({exc.strerror})") from None
    return holder


def _worker_main(config: ServeConfig, number: int, ready: Any, log_level: str, json_lines: bool) -> None:
    """One worker process: a whole KnnServer on the shared port, reporting readiness in ``ready[number]``."""
    from knnserve.service.logs import configure_logging
    from knnserve.service.server import KnnServer

    configure_logging(log_level, json_lines=json_lines)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_WorkerFilter(number))

    def tell(ok: bool) -> None:
        ready[number] = 1 if ok else 0

    try:
        KnnServer(config, on_ready_change=tell).run(load_first=True)
    except Exception as exc:  # reported to the supervisor through the exit status
        log.error("worker %d failed: %s", number, exc, exc_info=exc)
        os._exit(2)


class _WorkerFilter(logging.Filter):
    """Adds ``worker`` (its number) to every record a worker logs."""

    def __init__(self, number: int) -> None:
        super().__init__()
        self.number = number

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.number
        return True


class WorkerSupervisor:
    """Runs ``config.workers`` server processes on one port until SIGTERM/SIGINT (see the module docstring)."""

    def __init__(self, config: ServeConfig, *, log_level: str = "INFO", json_lines: bool = True) -> None:
        self.config = config
        self.log_level = log_level
        self.json_lines = json_lines
        self._context = mp.get_context("spawn")
        self._ready: Any = self._context.Array("b", config.workers, lock=False)
        self._processes: list[Any] = [None] * config.workers
        self._started_at = [0.0] * config.workers
        self._ever_ready = [False] * config.workers
        self._stopping = False
        self._reload = False
        self.port: int | None = None
        self.metrics_port: int | None = None

    # -- what the probes see ---------------------------------------------------------------------

    def ready(self) -> bool:
        """True exactly when every worker's health "" is SERVING and no stop was asked for."""
        return not self._stopping and all(self._ready[i] for i in range(self.config.workers))

    def live(self) -> bool:
        """True while every worker process runs."""
        return all(process is not None and process.is_alive() for process in self._processes)

    # -- running ---------------------------------------------------------------------------------

    def _start(self, number: int, worker_config: ServeConfig) -> None:
        self._ready[number] = 0
        process = self._context.Process(
            target=_worker_main, args=(worker_config, number, self._ready, self.log_level, self.json_lines),
            name=f"knnserve-worker-{number}", daemon=False,
        )
        process.start()
        self._processes[number] = process
        self._started_at[number] = time.monotonic()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            self._stopping = True

    def _signal_all(self, signum: int) -> None:
        for process in self._processes:
            if process is not None and process.is_alive() and process.pid is not None:
                try:
                    os.kill(process.pid, signum)
                except ProcessLookupError:
                    pass

    def run(self, *, poll_s: float = 0.1) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit status (0, or a worker's failure status)."""
        from prometheus_client import multiprocess

        from knnserve.service.metrics import multiprocess_registry, serve_http

        config = self.config
        metrics_dir = tempfile.mkdtemp(prefix="knnserve-metrics-")
        previous_env = os.environ.get(MULTIPROC_ENV)
        os.environ[MULTIPROC_ENV] = metrics_dir  # inherited by the spawned workers before they import prometheus_client
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in handled}
        holder = reserve_port(config.host, config.port)
        http = None
        status = 0
        try:
            self.port = int(holder.getsockname()[1])
            worker_config = replace(config, port=self.port, metrics_port=None, reuse_port=True)
            for number in range(config.workers):
                self._start(number, worker_config)
            if config.metrics_port is not None:
                http = serve_http(multiprocess_registry(metrics_dir), config.metrics_port, config.metrics_host,
                                  ready=self.ready, live=self.live)
                self.metrics_port = int(http.server_port)
            log.info("supervising", extra={"workers": config.workers, "address": f"{config.host}:{self.port}",
                                           "metrics_port": self.metrics_port, "cores_each": config.cores})
            holder_open = True
            while not self._stopping:
                time.sleep(poll_s)
                if holder_open and self.ready():
                    holder.close()  # every worker has bound the port; it stays reserved by them
                    holder_open = False
                    log.info("all workers ready", extra={"workers": config.workers})
                if self._reload:
                    self._reload = False
                    log.info("reload: forwarding SIGHUP to the workers")
                    self._signal_all(signal.SIGHUP)
                status = self._watch(worker_config, multiprocess)
                if status:
                    self._stopping = True
        finally:
            self._stopping = True
            self._signal_all(signal.SIGTERM)
            deadline = time.monotonic() + config.drain_s + config.grace_s + 15
            for process in self._processes:
                if process is not None:
                    process.join(max(0.0, deadline - time.monotonic()))
                    if process.is_alive():
                        log.warning("worker %s did not stop in time; killing it", process.name)
                        process.kill()
                        process.join(5)
            if http is not None:
                http.shutdown()
                http.server_close()
            holder.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if previous_env is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = previous_env
            shutil.rmtree(metrics_dir, ignore_errors=True)
            log.info("stopped", extra={"workers": config.workers})
        return status

    def _watch(self, worker_config: ServeConfig, multiprocess: Any) -> int:
        """Restart a worker that died after being ready; a nonzero status when one died before ever being ready."""
        for number, process in enumerate(self._processes):
            if self._ready[number]:
                self._ever_ready[number] = True
            if process is None or process.is_alive() or self._stopping:
                continue
            code = process.exitcode
            multiprocess.mark_process_dead(process.pid)
            if not self._ever_ready[number]:
                log.error("worker %d exited with status %s before it was ready; stopping", number, code)
                return code if isinstance(code, int) and code > 0 else 2
            if time.monotonic() - self._started_at[number] < RESTART_BACKOFF_S:
                continue
            log.error("worker %d exited with status %s; restarting it", number, code)
            self._ever_ready[number] = False
            self._start(number, worker_config)
        return 0


__all__ = ["WorkerSupervisor", "reserve_port"]
