"""``knnserve serve --workers N``: N server processes on one port, under one supervisor.

One Python process serves requests on one interpreter lock; a machine with more cores than one
process keeps busy takes several. The supervisor (this module, the process ``knnserve serve``
started) never creates a gRPC object itself; it

* reserves the port (a socket bound with SO_REUSEPORT, so port 0 works too; the HTTP/REST port as
  well when there is one) and starts N worker
  processes (``python -m knnserve.service.workers``: fresh interpreters, nothing inherited from
  this one, the configuration pickled over stdin), each a whole
  :class:`KnnServer` bound to that port (and the REST one) with SO_REUSEPORT, so the kernel spreads
  connections over them (grpcio's own multiprocessing example does the same);
* gives each worker its share of the cores for FAISS and gRPC threads, and has them map the index
  files (``ServeConfig.mmap``), so N processes hold one copy of an index's pages, not N;
* serves the metrics port itself: ``/metrics`` summed over the workers (prometheus_client's
  multiprocess mode, a temporary folder under ``PROMETHEUS_MULTIPROC_DIR``), ``/readyz`` ready
  exactly when every worker is (each writes its grpc.health.v1 "" state to a pipe as it changes),
  ``/livez`` live while every worker runs;
* forwards SIGHUP (reload) to every worker, and on SIGTERM/SIGINT makes ``/readyz`` fail, forwards
  the signal (each worker drains and stops as a single server does) and waits for all of them;
* restarts a worker that dies after it was ready; a worker that fails before it ever was ready
  (a bundle error, a port in use) stops the whole server with its exit status.

Workers never outlive their supervisor: each asks Linux for SIGTERM when its parent dies
(``PR_SET_PDEATHSIG``), so a supervisor killed outright (SIGKILL, the OOM killer) takes its workers
with it instead of leaving them serving the port unsupervised.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any

from knnserve.errors import InvalidInputError
from knnserve.service.config import ServeConfig

log = logging.getLogger(__name__)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# A worker that dies this soon after its previous start is not restarted again at once.
RESTART_BACKOFF_S = 1.0


def reserve_port(host: str, port: int, option: str = "--port") -> socket.socket:
    """A socket bound to (host, port) with SO_REUSEPORT, not listening: it holds the port (and picks
    one for port 0) until the workers have bound it too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        holder.bind((host, port))
    except OSError as exc:
        holder.close()
        raise InvalidInputError(option, "a port this server can bind", f"{host}:{port} ({exc.strerror})") from None
    return holder


def _worker_main(config: ServeConfig, number: int, ready_fd: int, log_level: str, json_lines: bool) -> None:
    """One worker process: a whole KnnServer on the shared port, writing b"1"/b"0" to ``ready_fd`` as
    its readiness changes."""
    from knnserve.service.logs import configure_logging
    from knnserve.service.server import KnnServer

    configure_logging(log_level, json_lines=json_lines)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_WorkerFilter(number))

    def tell(ok: bool) -> None:
        try:
            os.write(ready_fd, b"1" if ok else b"0")
        except OSError:  # the supervisor is gone; its death signal (SIGTERM) follows
            pass

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


@dataclass
class _Worker:
    """A worker process as the supervisor sees it."""

    process: subprocess.Popen[bytes]
    ready_pipe: int  # the supervisor's (read) end
    started_at: float
    ready: bool = False
    ever_ready: bool = False


class WorkerSupervisor:
    """Runs ``config.workers`` server processes on one port until SIGTERM/SIGINT (see the module docstring)."""

    def __init__(self, config: ServeConfig, *, log_level: str = "INFO", json_lines: bool = True) -> None:
        self.config = config
        self.log_level = log_level
        self.json_lines = json_lines
        self._workers: list[_Worker | None] = [None] * config.workers
        self._stopping = False
        self._reload = False
        self.port: int | None = None
        self.http_port: int | None = None
        self.metrics_port: int | None = None

    # -- what the probes see ---------------------------------------------------------------------

    def ready(self) -> bool:
        """True exactly when every worker's health "" is SERVING and no stop was asked for."""
        return not self._stopping and all(worker is not None and worker.ready for worker in self._workers)

    def live(self) -> bool:
        """True while every worker process runs."""
        return all(worker is not None and worker.process.poll() is None for worker in self._workers)

    # -- running ---------------------------------------------------------------------------------

    def _start(self, number: int, worker_config: ServeConfig) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        process = subprocess.Popen(
            [sys.executable, "-m", "knnserve.service.workers", str(number), str(write_end), str(os.getpid())],
            stdin=subprocess.PIPE, pass_fds=(write_end,),
        )
        os.close(write_end)
        assert process.stdin is not None
        process.stdin.write(pickle.dumps((worker_config, self.log_level, self.json_lines)))
        process.stdin.close()
        self._workers[number] = _Worker(process, read_end, time.monotonic())

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
        else:
            self._stopping = True

    def _signal_all(self, signum: int) -> None:
        for worker in self._workers:
            if worker is not None and worker.process.poll() is None:
                try:
                    worker.process.send_signal(signum)
                except ProcessLookupError:
                    pass

    def _read_readiness(self) -> None:
        for worker in self._workers:
            if worker is None:
                continue
            try:
                data = os.read(worker.ready_pipe, 4096)
            except BlockingIOError:
                continue
            if data:
                worker.ready = data[-1:] == b"1"
                worker.ever_ready = worker.ever_ready or worker.ready
            else:
                worker.ready = False  # end of file: the worker is gone

    def run(self, *, poll_s: float = 0.1) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit status (0, or a worker's failure status)."""
        from prometheus_client import multiprocess

        from knnserve.service.metrics import multiprocess_registry, serve_http

        config = self.config
        holder = reserve_port(config.host, config.port)
        try:
            # The REST port too: every worker binds it with SO_REUSEPORT, like the gRPC one.
            http_holder = reserve_port(config.rest_host, config.http_port, "--http-port") if config.http_port is not None else None
        except BaseException:
            holder.close()
            raise
        holders = [h for h in (holder, http_holder) if h is not None]
        metrics_dir = tempfile.mkdtemp(prefix="knnserve-metrics-")
        previous_env = os.environ.get(MULTIPROC_ENV)
        os.environ[MULTIPROC_ENV] = metrics_dir  # inherited by the workers before they import prometheus_client
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in handled}
        http = None
        status = 0
        try:
            self.port = int(holder.getsockname()[1])
            self.http_port = int(http_holder.getsockname()[1]) if http_holder is not None else None
            worker_config = replace(config, port=self.port, http_port=self.http_port, metrics_port=None, reuse_port=True)
            for number in range(config.workers):
                self._start(number, worker_config)
            if config.metrics_port is not None:
                http = serve_http(multiprocess_registry(metrics_dir), config.metrics_port, config.metrics_host,
                                  ready=self.ready, live=self.live)
                self.metrics_port = int(http.server_port)
            log.info("supervising", extra={"workers": config.workers, "address": f"{config.host}:{self.port}",
                                           "http_port": self.http_port, "metrics_port": self.metrics_port,
                                           "cores_each": config.cores})
            holder_open = True
            while not self._stopping:
                time.sleep(poll_s)
                self._read_readiness()
                if holder_open and self.ready():
                    for held in holders:
                        held.close()  # every worker has bound the port; it stays reserved by them
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
            self._stop_workers()
            if http is not None:
                http.shutdown()
                http.server_close()
            for held in holders:
                held.close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if previous_env is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = previous_env
            shutil.rmtree(metrics_dir, ignore_errors=True)
            log.info("stopped", extra={"workers": config.workers})
        return status

    def _stop_workers(self) -> None:
        """SIGTERM to every worker (each drains, then stops), then wait; kill what outlives its time."""
        self._signal_all(signal.SIGTERM)
        deadline = time.monotonic() + self.config.drain_s + self.config.grace_s + 15
        for worker in self._workers:
            if worker is None:
                continue
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker %d did not stop in time; killing it", worker.process.pid)
                worker.process.kill()
                worker.process.wait(5)
            os.close(worker.ready_pipe)

    def _watch(self, worker_config: ServeConfig, multiprocess: Any) -> int:
        """Restart a worker that died after being ready; a nonzero status when one died before ever being ready."""
        for number, worker in enumerate(self._workers):
            if worker is None or worker.process.poll() is None or self._stopping:
                continue
            code = worker.process.returncode
            if not worker.ever_ready:
                log.error("worker %d exited with status %s before it was ready; stopping", number, code)
                return code if code > 0 else 2
            if time.monotonic() - worker.started_at < RESTART_BACKOFF_S:
                continue
            log.error("worker %d exited with status %s; restarting it", number, code)
            multiprocess.mark_process_dead(worker.process.pid)
            os.close(worker.ready_pipe)
            self._start(number, worker_config)
        return 0


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(supervisor_pid: int) -> None:
    """Have the kernel send this worker SIGTERM when its supervisor dies, however it dies (SIGKILL, OOM).

    Without it a killed supervisor leaves its workers serving the port, unsupervised. The worker's
    SIGTERM handler drains and stops it as usual. If the supervisor died before the request was made,
    the parent is already someone else: stop now.
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor_pid:
        os.kill(os.getpid(), signal.SIGTERM)


def _main_from_stdin(argv: list[str]) -> None:
    """Entry of a worker process: ``python -m knnserve.service.workers NUMBER READY_FD SUPERVISOR_PID``,
    config on stdin."""
    number, ready_fd, supervisor_pid = int(argv[0]), int(argv[1]), int(argv[2])
    _die_with(supervisor_pid)
    config, log_level, json_lines = pickle.loads(sys.stdin.buffer.read())  # from the supervisor that started us
    _worker_main(config, number, ready_fd, log_level, json_lines)


__all__ = ["WorkerSupervisor", "reserve_port"]


if __name__ == "__main__":
    _main_from_stdin(sys.argv[1:])
