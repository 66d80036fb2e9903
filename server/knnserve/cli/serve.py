"""``knnserve serve`` (the gRPC server) and ``knnserve demo`` (train if needed, serve, classify the test split, report)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from knnserve.cli.options import (
    PORT,
    POSITIVE,
    SECONDS,
    Ranged,
    add_common_options,
    add_token_options,
    token_of,
)
from knnserve.dataplane.config import BatchConfig
from knnserve.online.config import DEFAULT_MAX_LOG_BYTES, DEFAULT_MAX_ROWS_PER_ADD, OnlineConfig, OnlineLimits
from knnserve.blas import DEFAULT_BLAS_THRESHOLD
from knnserve.service.config import DEFAULT_PORT
from knnserve.service.loop import EVENT_LOOPS
from knnserve_client.wire.limits import (
    DEFAULT_MAX_EF_SEARCH,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_NEIGHBORS_PER_REQUEST,
    DEFAULT_MAX_ROWS_PER_REQUEST,
)


# Options whose default may come from the environment (containers set ports there, so the image's
# health check and the server agree): option -> (variable, default, type).
ENVIRONMENT_DEFAULTS: dict[str, tuple[str, object, Ranged | None]] = {
    "host": ("KNNSERVE_HOST", "127.0.0.1", None),
    "port": ("KNNSERVE_PORT", DEFAULT_PORT, PORT),
    "metrics_port": ("KNNSERVE_METRICS_PORT", None, PORT),
    "metrics_host": ("KNNSERVE_METRICS_HOST", "127.0.0.1", None),
    "http_port": ("KNNSERVE_HTTP_PORT", None, PORT),
    "http_host": ("KNNSERVE_HTTP_HOST", None, None),
}


def apply_environment(args: argparse.Namespace) -> None:
    """Fill the options left unset from their environment variables (checked like the option), else the default."""
    from knnserve.errors import InvalidInputError

    for option, (variable, default, kind) in ENVIRONMENT_DEFAULTS.items():
        if getattr(args, option) is not None:
            continue
        text = os.environ.get(variable, "")
        value: object = default
        if text:
            try:
                value = kind(text) if kind is not None else text
            except argparse.ArgumentTypeError as exc:
                raise InvalidInputError(f"environment variable {variable}", str(exc).removeprefix("expected "), None) from None
        setattr(args, option, value)


def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT (SIGHUP reloads the models)."""
    from knnserve.errors import InvalidInputError
    from knnserve.service.config import ServeConfig, ThreadConfig, TlsConfig, read_token
    from knnserve.service.logs import configure_logging
    from knnserve_client.wire.limits import ServerLimits

    apply_environment(args)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise InvalidInputError("--tls-cert/--tls-key", "both or neither", "only one of them")
    config = ServeConfig(
        models_dir=args.models,
        model_dir=args.model,
        host=args.host,
        port=args.port,
        limits=ServerLimits(args.max_message_bytes, args.max_rows_per_request, args.max_neighbors_per_request,
                            args.max_ef_search),
        batching=BatchConfig(
            enabled=not args.no_batching,
            max_rows=args.batch_max_rows,
            max_neighbors=args.batch_max_neighbors,
            max_wait_us=args.batch_max_wait_us,
            adaptive=not args.no_adaptive_wait,
            wait_fraction=args.batch_wait_fraction,
            unbatched_below_us=args.batch_unbatched_below_us,
        ),
        threads=ThreadConfig(faiss_threads=args.faiss_threads, grpc_workers=args.grpc_workers),
        reflection=not args.no_reflection,
        event_loop=args.event_loop,
        tls=TlsConfig(cert=args.tls_cert, key=args.tls_key) if args.tls_cert is not None else None,
        token=token_of(args),
        blas_threshold=args.blas_threshold,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        grace_s=args.grace,
        drain_s=args.drain,
        mmap=not args.no_mmap,
        kernel=args.kernel,
        workers=args.workers,
        online=online_of(args),
        write_token=read_token(token_file=args.write_token_file) if args.write_token_file is not None else None,
        http_port=args.http_port,
        http_host=args.http_host,
    )
    configure_logging(args.log_level, json_lines=args.log_format == "json")
    if config.workers > 1:
        from knnserve.service.workers import WorkerSupervisor

        # The supervisor never loads the serving stack (faiss, grpc, the models): workers import it.
        return WorkerSupervisor(config, log_level=args.log_level, json_lines=args.log_format == "json").run()
    from knnserve.service.server import KnnServer

    KnnServer(config).run()
    return 0


def online_of(args: argparse.Namespace) -> OnlineConfig | None:
    """The online-learning settings the options ask for (None without --online-dir)."""
    if args.online_dir is None:
        return None
    return OnlineConfig(args.online_dir, OnlineLimits(args.max_rows_per_add, args.max_log_bytes), sync=not args.no_fsync)


def run_demo(args: argparse.Namespace) -> int:
    """The main job of the README: see ``knnserve.commands.demo``."""
    from knnserve.commands.demo import run_demo as demo

    demo(models_dir=args.models, dataset=args.dataset, data_dir=args.data_dir, index=args.index,
         linear=not args.no_linear, features=args.features, epochs=args.epochs, request_rows=args.request_rows,
         concurrency=args.concurrency, progress=not args.no_progress)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve`` and ``demo``."""
    parser = sub.add_parser("serve", help="serve model bundles over gRPC (and, with --http-port, HTTP/REST)")
    add_common_options(parser, log_level="INFO")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--models", type=Path, default=None, help="folder of bundles laid out NAME/VERSION/")
    source.add_argument("--model", type=Path, default=None, help="one bundle folder, served under its manifest's name")
    parser.add_argument("--host", default=None, help="address to bind (default: $KNNSERVE_HOST or 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=PORT, default=None, help=f"port (default: $KNNSERVE_PORT or {DEFAULT_PORT}; 0 picks one)")
    parser.add_argument("--max-message-bytes", type=Ranged(int, 1024), default=DEFAULT_MAX_MESSAGE_BYTES,
                        help=f"largest request accepted, in bytes (default: {DEFAULT_MAX_MESSAGE_BYTES})")
    parser.add_argument("--max-rows-per-request", type=POSITIVE, default=DEFAULT_MAX_ROWS_PER_REQUEST,
                        help=f"most rows one request may carry (default: {DEFAULT_MAX_ROWS_PER_REQUEST})")
    parser.add_argument("--max-neighbors-per-request", type=POSITIVE, default=DEFAULT_MAX_NEIGHBORS_PER_REQUEST,
                        help=f"most neighbors (rows x k) one request may ask for (default: {DEFAULT_MAX_NEIGHBORS_PER_REQUEST})")
    parser.add_argument("--max-ef-search", type=POSITIVE, default=DEFAULT_MAX_EF_SEARCH,
                        help=f"largest efSearch a request may ask of an HNSW index (default: {DEFAULT_MAX_EF_SEARCH})")
    parser.add_argument("--no-batching", action="store_true", help="search every request on its own (no dynamic batching)")
    parser.add_argument("--batch-max-rows", type=POSITIVE, default=BatchConfig.max_rows,
                        help=f"rows per merged search (default: {BatchConfig.max_rows})")
    parser.add_argument("--batch-max-neighbors", type=POSITIVE, default=BatchConfig.max_neighbors,
                        help="neighbor budget of a merged search, rows x the largest k; a request over it runs alone "
                             f"on a lane of its own (default: {BatchConfig.max_neighbors})")
    parser.add_argument("--batch-max-wait-us", type=Ranged(int, 0), default=BatchConfig.max_wait_us,
                        help=f"longest wait for company, microseconds (default: {BatchConfig.max_wait_us})")
    parser.add_argument("--batch-wait-fraction", type=Ranged(float, 0.0, 10.0), default=BatchConfig.wait_fraction,
                        help=f"adaptive wait: at most this share of the last search's time (default: {BatchConfig.wait_fraction})")
    parser.add_argument("--batch-unbatched-below-us", type=Ranged(int, 0), default=BatchConfig.unbatched_below_us,
                        help="adaptive mode: searches expected to take less than this many microseconds run at once on "
                             "the event loop's thread, unbatched (a hand-off costs more than they could save; 0 = off; "
                             f"default: {BatchConfig.unbatched_below_us})")
    parser.add_argument("--no-adaptive-wait", action="store_true", help="always wait max-wait, even without concurrent load")
    parser.add_argument("--faiss-threads", type=POSITIVE, default=None, help="OpenMP threads per search (default: sized to the cores)")
    parser.add_argument("--grpc-workers", type=POSITIVE, default=None,
                        help="threads per process for blocking work beside the event loop that serves the calls: "
                             "writes and snapshots, and every search when batching is off (default: max(2, cores)). "
                             "Calls in flight are not threads: a call waiting for its batch holds none")
    parser.add_argument("--blas-threshold", type=POSITIVE, default=DEFAULT_BLAS_THRESHOLD,
                        help=f"query rows from which exact search uses BLAS (default: {DEFAULT_BLAS_THRESHOLD})")
    parser.add_argument("--no-reflection", action="store_true", help="turn gRPC server reflection off")
    parser.add_argument("--event-loop", choices=EVENT_LOOPS, default="auto",
                        help="the event loop that serves the calls: uvloop (libuv), asyncio (the standard library's), "
                             "or auto, uvloop when it is installed (default: auto)")
    parser.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate chain (with --tls-key)")
    parser.add_argument("--tls-key", type=Path, default=None, help="PEM private key (with --tls-cert)")
    add_token_options(parser)
    online = parser.add_argument_group("writes (docs/online.md)")
    online.add_argument("--online-dir", type=Path, default=None,
                        help="take AddExamples/RemoveExamples/SnapshotModel: their write-ahead logs live in this folder "
                             "(with --write-token-file; models are then read into memory, not mapped)")
    online.add_argument("--write-token-file", type=Path, default=None,
                        help="file whose first line is the token writes need (reads accept it too)")
    online.add_argument("--max-rows-per-add", type=POSITIVE, default=DEFAULT_MAX_ROWS_PER_ADD,
                        help=f"most rows (or ids) one write may carry (default: {DEFAULT_MAX_ROWS_PER_ADD})")
    online.add_argument("--max-log-bytes", type=POSITIVE, default=DEFAULT_MAX_LOG_BYTES,
                        help="writes are refused (RESOURCE_EXHAUSTED) once a model's log holds this many bytes, "
                             f"until a snapshot (default: {DEFAULT_MAX_LOG_BYTES})")
    online.add_argument("--no-fsync", action="store_true",
                        help="acknowledge writes without fsync (tests only: a crash of the machine loses them)")
    parser.add_argument("--http-port", type=PORT, default=None,
                        help="also serve the Open Inference Protocol over HTTP/REST (KServe v2: /v2/..., curl, "
                             "tritonclient.http) on this port, HTTPS with --tls-cert/--tls-key, the same token "
                             "(default: $KNNSERVE_HTTP_PORT, else off; 0 picks one)")
    parser.add_argument("--http-host", default=None,
                        help="address of the HTTP/REST endpoint (default: $KNNSERVE_HTTP_HOST, else --host)")
    parser.add_argument("--metrics-port", type=PORT, default=None,
                        help="serve Prometheus /metrics and the HTTP probes /livez and /readyz on this port "
                             "(default: $KNNSERVE_METRICS_PORT, else off)")
    parser.add_argument("--metrics-host", default=None,
                        help="address of the metrics endpoint (default: $KNNSERVE_METRICS_HOST or 127.0.0.1)")
    parser.add_argument("--workers", type=POSITIVE, default=1,
                        help="server processes on the port (SO_REUSEPORT), each with its share of the cores; they "
                             "map the index files, so one copy of an index serves them all (default: 1)")
    parser.add_argument("--no-mmap", action="store_true",
                        help="read index files into each process's memory instead of mapping them")
    parser.add_argument("--kernel", choices=("auto", "faiss"), default="auto",
                        help="search kernels for raw-uint8 Flat and IVF bundles (docs/indexes.md): auto uses them "
                             "where planned; faiss turns them off. A kernel keeps a private copy of the vectors in "
                             "every process, which --workers cannot share (default: auto)")
    parser.add_argument("--drain", type=SECONDS, default=2.0,
                        help="after SIGTERM, seconds of health NOT_SERVING while calls are still accepted, so load "
                             "balancers stop routing here first (default: 2)")
    parser.add_argument("--grace", type=SECONDS, default=10.0, help="seconds calls in flight get at shutdown (default: 10)")
    parser.add_argument("--log-format", choices=("json", "text"), default="json", help="log lines (default: json)")
    parser.set_defaults(handler=run_serve)

    demo = sub.add_parser("demo", help="train a bundle if needed, serve it, classify the test split through the client, report")
    add_common_options(demo)
    demo.add_argument("--models", type=Path, default=Path("models"), help="bundles folder NAME/VERSION/ (default: ./models)")
    demo.add_argument("--dataset", default=None, help="registered dataset (default: fashion-mnist)")
    demo.add_argument("--data-dir", type=Path, default=None, help="folder with the dataset files")
    demo.add_argument("--index", default="flat", help="index spec for a bundle trained here (default: flat)")
    demo.add_argument("--no-linear", action="store_true", help="train a new bundle without the linear head")
    demo.add_argument("--features", default="pixels",
                      help="what a bundle trained here works on: pixels, or cnn (an embedding network trained on the "
                           'training split; needs pip install "knnserve[cnn]"; `make demo` uses it) (default: pixels)')
    demo.add_argument("--epochs", type=Ranged(int, 1, 1000), default=None,
                      help="with --features cnn: most epochs of network training (default: knnserve train's)")
    demo.add_argument("--request-rows", type=POSITIVE, default=100, help="rows per request (default: 100)")
    demo.add_argument("--concurrency", type=POSITIVE, default=4, help="concurrent clients (default: 4)")
    demo.set_defaults(handler=run_demo)


__all__ = ["register", "run_demo", "run_serve"]
