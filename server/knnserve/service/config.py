"""Server configuration (frozen dataclasses) and the default thread sizing."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from knnserve.errors import InvalidInputError

DEFAULT_PORT = 50051
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_ROWS_PER_REQUEST = 8192
# rows * k per request: bounds FAISS's result arrays (12 bytes a neighbour) and the response size.
DEFAULT_MAX_NEIGHBORS_PER_REQUEST = 4_000_000
# Rows from which exact flat search goes through BLAS (faiss.cvar.distance_compute_blas_threshold;
# FAISS 1.15 defaults to 128000). Measured on Fashion-MNIST, 1 thread: 1 row 24 ms without BLAS,
# 63 ms with; 16 rows 358 ms without, 132 ms with. Merged batches are what BLAS is good at.
DEFAULT_BLAS_THRESHOLD = 4


def available_cores() -> int:
    """CPU cores this process may run on (affinity-aware, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class BatchConfig:
    """Dynamic batching: concurrent requests to one model version merged into one FAISS search.

    Attributes
    ----------
    enabled : off = every request searches on its own gRPC worker thread.
    max_rows : a batch closes once it holds this many rows (one request larger than this is
        searched alone).
    max_wait_us : the longest the first request of a batch may wait for company, in microseconds.
    adaptive : wait only while there is concurrent load (the previous batch merged several
        requests), and at most ``wait_fraction`` of the last search's duration: waiting then
        never costs more than that share of a search, and merging saves whole searches (an
        exact search of 16 rows costs little more than one of 4). A lone client pays no wait.
    wait_fraction : see ``adaptive``.
    """

    enabled: bool = True
    max_rows: int = 256
    max_wait_us: int = 10_000
    adaptive: bool = True
    wait_fraction: float = 0.25

    def __post_init__(self) -> None:
        if self.max_rows < 1:
            raise ValueError(f"max_rows: expected >= 1, got {self.max_rows}")
        if self.max_wait_us < 0:
            raise ValueError(f"max_wait_us: expected >= 0, got {self.max_wait_us}")
        if not 0 <= self.wait_fraction <= 10:
            raise ValueError(f"wait_fraction: expected between 0 and 10, got {self.wait_fraction}")


@dataclass(frozen=True)
class ThreadConfig:
    """FAISS OpenMP threads per searching thread and gRPC worker threads; None = sized from the cores.

    With batching, a model's searches never overlap (one at a time, on the batching thread or
    inline on an idle caller's worker), so each may use every core: ``faiss_threads`` = cores.
    The gRPC workers mostly wait for it, so many of them cost no CPU and let large batches form.
    Without batching every worker searches: one FAISS thread each and as many workers as cores.
    Several models busy at once each run their own search: lower ``faiss_threads`` then.
    """

    faiss_threads: int | None = None
    grpc_workers: int | None = None

    def resolve(self, batching: bool, cores: int | None = None) -> tuple[int, int]:
        """(faiss_threads, grpc_workers) for this machine."""
        cores = cores or available_cores()
        if batching:
            defaults = (cores, max(64, 8 * cores))
        else:
            defaults = (1, max(2, cores))
        faiss_threads = self.faiss_threads or defaults[0]
        grpc_workers = self.grpc_workers or defaults[1]
        if faiss_threads < 1 or grpc_workers < 1:
            raise ValueError(f"thread counts must be >= 1, got faiss={faiss_threads} grpc={grpc_workers}")
        return faiss_threads, grpc_workers


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
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_rows_per_request: int = DEFAULT_MAX_ROWS_PER_REQUEST
    max_neighbors_per_request: int = DEFAULT_MAX_NEIGHBORS_PER_REQUEST
    batching: BatchConfig = field(default_factory=BatchConfig)
    threads: ThreadConfig = field(default_factory=ThreadConfig)
    reflection: bool = True
    tls: TlsConfig | None = None
    token: str | None = None
    blas_threshold: int | None = DEFAULT_BLAS_THRESHOLD
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    grace_s: float = 10.0

    def __post_init__(self) -> None:
        if (self.models_dir is None) == (self.model_dir is None):
            raise ValueError("exactly one of models_dir (--models) and model_dir (--model) must be given")
        if self.max_message_bytes < 1024:
            raise ValueError(f"max_message_bytes: expected >= 1024, got {self.max_message_bytes}")
        if self.max_rows_per_request < 1:
            raise ValueError(f"max_rows_per_request: expected >= 1, got {self.max_rows_per_request}")
        if self.max_neighbors_per_request < 1:
            raise ValueError(f"max_neighbors_per_request: expected >= 1, got {self.max_neighbors_per_request}")
        if self.blas_threshold is not None and self.blas_threshold < 1:
            raise ValueError(f"blas_threshold: expected >= 1, got {self.blas_threshold}")
        if self.token is not None and not self.token.strip():
            raise ValueError("token: expected a non-empty string")


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


__all__ = ["BatchConfig", "ServeConfig", "ThreadConfig", "TlsConfig", "available_cores", "read_token"]
