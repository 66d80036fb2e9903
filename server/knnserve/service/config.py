"""Server configuration (frozen dataclasses) and the default thread sizing."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from knnserve.dataplane.config import BatchConfig
from knnserve.errors import InvalidInputError
from knnserve.blas import DEFAULT_BLAS_THRESHOLD
from knnserve.machine import usable_cores
from knnserve.online.config import OnlineConfig
from knnserve_client.wire.limits import ServerLimits

DEFAULT_PORT = 50051


@dataclass(frozen=True)
class ThreadConfig:
    """FAISS OpenMP threads per searching thread and the pool for blocking work; None = sized from the cores.

    Calls are tasks on the server's event loop, not threads (``service/server.py``). With batching,
    a model's searches never overlap (one at a time, on its search lane), so each may use every
    core: ``faiss_threads`` = cores. ``grpc_workers`` (the ``--grpc-workers`` option's name is kept)
    sizes the pool of threads for blocking work beside the loop: writes and snapshots, and, without
    batching, every search (one FAISS thread each, as many threads as cores).
    Several models busy at once each run their own search: lower ``faiss_threads`` then.
    """

    faiss_threads: int | None = None
    grpc_workers: int | None = None

    def __post_init__(self) -> None:
        for name in ("faiss_threads", "grpc_workers"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InvalidInputError(name, "an integer >= 1, or unset to size it from the cores", value)

    def resolve(self, batching: bool, cores: int | None = None) -> tuple[int, int]:
        """(faiss_threads, blocking threads) for this machine."""
        cores = cores or usable_cores()
        defaults = (cores, max(2, cores)) if batching else (1, max(2, cores))
        return self.faiss_threads or defaults[0], self.grpc_workers or defaults[1]


@dataclass(frozen=True)
class TlsConfig:
    """Server certificate chain and private key (PEM files)."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``knnserve serve`` needs.

    Exactly one of ``models_dir`` (a folder of ``NAME/VERSION/`` bundles) and ``model_dir`` (one
    bundle, served under its manifest's name as version 1) is set.
    """

    models_dir: Path | None = None
    model_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    limits: ServerLimits = field(default_factory=ServerLimits)
    batching: BatchConfig = field(default_factory=BatchConfig)
    threads: ThreadConfig = field(default_factory=ThreadConfig)
    reflection: bool = True
    # The event loop that serves the calls: auto (uvloop when installed), asyncio or uvloop (service/loop.py).
    event_loop: str = "auto"
    tls: TlsConfig | None = None
    token: str | None = None
    blas_threshold: int = DEFAULT_BLAS_THRESHOLD
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    grace_s: float = 10.0
    # After SIGTERM: health NOT_SERVING while calls are still accepted, so load balancers and
    # Kubernetes endpoints stop routing here before the listener closes.
    drain_s: float = 2.0
    # Index files mapped read-only, not copied: processes serving one bundle share its pages.
    mmap: bool = True
    # Search kernels for raw-uint8 Flat/IVF bundles (knnserve.kernels): "auto" where planned, "faiss" never.
    # A kernel holds its own copy of the vectors in each process; FAISS's mapped pages are shared.
    kernel: str = "auto"
    # Server processes on the port (service/workers.py); each sizes its threads to its share of the cores.
    workers: int = 1
    # SO_REUSEPORT on the listener: only the processes of one --workers server share a port.
    reuse_port: bool = False
    # Writes (AddExamples, RemoveExamples, SnapshotModel): the write-ahead logs' folder and limits, and
    # the token they need. Both or neither. Models are then loaded into memory (FAISS cannot add to a
    # mapped index), one copy per process.
    online: OnlineConfig | None = None
    write_token: str | None = None
    # The Open Inference Protocol over HTTP/REST (service/rest/) on a port of its own; None: off.
    # Its host defaults to the gRPC one; with tls set it serves HTTPS with the same pair.
    http_port: int | None = None
    http_host: str | None = None

    def __post_init__(self) -> None:
        if (self.models_dir is None) == (self.model_dir is None):
            raise InvalidInputError("models", "exactly one of --models FOLDER and --model BUNDLE", "both or neither")
        if not 0 <= self.port <= 65535:
            raise InvalidInputError("port", "an integer between 0 and 65535", self.port)
        if self.blas_threshold < 1:
            raise InvalidInputError("blas_threshold", "an integer >= 1", self.blas_threshold)
        if self.token is not None and not self.token.strip():
            raise InvalidInputError("token", "a non-empty string", "an empty one")
        if self.grace_s < 0:
            raise InvalidInputError("grace", "a number of seconds >= 0", self.grace_s)
        if self.drain_s < 0:
            raise InvalidInputError("drain", "a number of seconds >= 0", self.drain_s)
        if self.kernel not in ("auto", "faiss"):
            raise InvalidInputError("kernel", "auto or faiss", self.kernel)
        if self.workers < 1:
            raise InvalidInputError("workers", "an integer >= 1", self.workers)
        if self.event_loop not in ("auto", "asyncio", "uvloop"):
            raise InvalidInputError("event_loop", "auto, asyncio or uvloop", self.event_loop)
        if (self.online is None) != (self.write_token is None):
            raise InvalidInputError("online", "--online-dir and --write-token-file together (writes need the write token)",
                                    "one without the other")
        if self.write_token is not None and self.write_token == self.token:
            raise InvalidInputError("write token", "a token different from the read token", "the same token")
        if self.http_port is not None:
            if not 0 <= self.http_port <= 65535:
                raise InvalidInputError("http_port", "an integer between 0 and 65535", self.http_port)
            if self.http_port != 0 and self.http_port == self.port and self.rest_host == self.host:
                raise InvalidInputError("http_port", f"a port other than the gRPC port {self.port}", self.http_port)

    @property
    def rest_host(self) -> str:
        """The address the HTTP/REST endpoint binds: ``http_host``, else the gRPC ``host``."""
        return self.http_host if self.http_host is not None else self.host

    @property
    def cores(self) -> int:
        """The cores one server process sizes its threads to: its share of the usable ones."""
        return max(1, usable_cores() // self.workers)


def read_token(*, token_file: str | Path | None = None, env_var: str | None = None) -> str | None:
    """The bearer token from a file (first line, stripped) or an environment variable, or None."""
    if token_file is not None:
        try:
            lines = Path(token_file).read_text().strip().splitlines()
        except OSError as exc:
            raise InvalidInputError("token file", "a readable file", f"{token_file} ({exc.strerror})") from None
        if not lines or not lines[0].strip():
            raise InvalidInputError("token file", "a token on the first line", f"{token_file} is empty")
        return lines[0].strip()
    if env_var is not None:
        value = os.environ.get(env_var, "").strip()
        if not value:
            raise InvalidInputError("token", f"a token in environment variable {env_var}", "unset or empty")
        return value
    return None


__all__ = ["DEFAULT_PORT", "ServeConfig", "ThreadConfig", "TlsConfig", "read_token"]
