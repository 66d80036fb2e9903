"""``knnserve batch``: classify a large input into Parquet or CSV, resumably, locally, through a server, or on Ray."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from knnserve.batch.output import FORMATS
from knnserve.cli.bundles import HEAD_CHOICES, heads_of
from knnserve.cli.options import (
    POSITIVE,
    Ranged,
    add_client_options,
    add_common_options,
    add_query_options,
    add_threads_option,
    query_from_args,
    tls_of,
    token_of,
)
from knnserve.cli.parser import EXIT_SERVER
from knnserve_client.wire.query import MAX_OPTION_VALUE

# A job that finished but wrote bad rows to the errors file.
EXIT_ROW_ERRORS = 1
ENGINES = ("local", "ray")
EPILOG = (
    "exit status: 0 every row classified; 1 the job finished but some rows were bad (see OUT/_errors.csv); "
    "2 bad option or input, or OUT holds another job; 3 a call to the server or the Ray cluster failed; 130 interrupted. "
    "Run the same command again after an interruption: committed shards are kept, the rest is redone."
)


def _check_combinations(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Options that belong to one engine are refused with another (so a typo never silently runs elsewhere)."""
    if args.server is not None and args.engine == "ray":
        parser.error("argument --engine: ray and --server are two different engines; choose one")
    ray_only = [name for name, value in (("--ray-address", args.ray_address), ("--actors", args.actors),
                                         ("--actor-cpus", args.actor_cpus)) if value is not None]
    if ray_only and args.engine != "ray":
        parser.error(f"argument {ray_only[0]}: only with --engine ray")
    server_only = [name for name, value in (("--model-version", args.model_version), ("--in-flight", args.in_flight),
                                            ("--request-rows", args.request_rows)) if value is not None]
    if server_only and args.server is None:
        parser.error(f"argument {server_only[0]}: only with --server")
    if args.threads is not None and args.server is not None:
        parser.error("argument --threads: not with --server (the server's --faiss-threads decides)")


def run_batch(args: argparse.Namespace) -> int:
    """Build the job and its engine from the options, run it, print the summary line."""
    from knnserve.batch import DEFAULT_SHARD_ROWS, JobSpec, ReadOptions, run_job
    from knnserve.batch.engines.errors import ClusterError

    _check_combinations(args.parser, args)
    query = query_from_args(args).replace(top_n=args.top_n)
    spec = JobSpec(
        inputs=tuple(args.input), out=args.out, fmt=args.format, heads=heads_of(args.method), query=query,
        neighbors=args.neighbors, shard_rows=args.shard_rows or DEFAULT_SHARD_ROWS, read=ReadOptions(column=args.column),
        progress=not args.no_progress,
    )
    if args.server is not None:
        from knnserve.batch.engines.server import ServerEngine

        engine = ServerEngine(args.server, args.model, version=args.model_version, tls=tls_of(args), token=token_of(args),
                              timeout=args.timeout, in_flight=args.in_flight, request_rows=args.request_rows,
                              retry_seconds=args.retry_seconds)
    elif args.engine == "ray":
        from knnserve.batch.engines.ray_data import RayEngine

        engine = RayEngine(Path(args.model), address=args.ray_address, actors=args.actors, actor_cpus=args.actor_cpus)
    else:
        from knnserve.batch.engines.local import LocalEngine

        engine = LocalEngine(Path(args.model), threads=args.threads)
    try:
        summary = run_job(spec, engine)
    except ClusterError as exc:
        print(f"knnserve batch: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_SERVER
    print(f"knnserve batch: {summary.line()}")
    if summary.errors:
        print(f"knnserve batch: {summary.errors} bad rows are listed in {args.out / '_errors.csv'}")
        return EXIT_ROW_ERRORS
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``batch``."""
    parser = sub.add_parser("batch", help="classify files, folders or globs into Parquet/CSV shards; resumable; local, --server or Ray",
                            epilog=EPILOG)
    add_common_options(parser)
    parser.add_argument("--input", action="append", required=True, metavar="PATH",
                        help="file, folder (read recursively) or quoted glob; repeat for more. Kinds: .npy, .npz, IDX "
                             "(.gz or not), .parquet (an image-bytes or numeric-list column), PNG/JPEG images")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder: part-NNNNN.parquet|csv, _errors.csv, _job.json (rerun the same command to resume)")
    parser.add_argument("--model", required=True, help="bundle folder; with --server, the served model's name")
    parser.add_argument("--format", choices=FORMATS, default="parquet", help="part file format (default: parquet)")
    parser.add_argument("--column", default=None,
                        help="the Parquet column or .npz array holding the rows (default: the only usable one)")
    parser.add_argument("--method", choices=HEAD_CHOICES, default="knn",
                        help="which head(s) classify (default: knn); both writes knn_* and linear_* columns")
    add_query_options(parser)
    parser.add_argument("--top-n", type=Ranged(int, 0, MAX_OPTION_VALUE), default=None,
                        help="best classes written per row with their scores (default: min(5, classes))")
    parser.add_argument("--neighbors", action="store_true", help="also write neighbor_ids, neighbor_distances, neighbor_labels")
    parser.add_argument("--shard-rows", type=Ranged(int, 1, 10_000_000), default=None,
                        help="input rows per shard, the unit committed at once (default: 10000)")
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="local: this process (default); ray: Ray Data (pip install 'knnserve[ray]'); see also --server")

    local = parser.add_argument_group("local engine")
    add_threads_option(local, help_text="searches at a time, one FAISS thread each (default: one per core)")

    server = parser.add_argument_group("server engine (--server)")
    add_client_options(server, required=False, server_help="HOST:PORT: classify through this knnserve server instead")
    server.add_argument("--model-version", type=POSITIVE, default=None, help="model version (default: the newest, pinned for the job)")
    server.add_argument("--in-flight", type=Ranged(int, 1, 256), default=None, help="requests in flight at once (default: 4)")
    server.add_argument("--request-rows", type=Ranged(int, 1, 1_000_000), default=None,
                        help="rows per request, split further under the server's limits (default: 1024)")
    server.add_argument("--retry-seconds", type=Ranged(float, 0.0), default=120.0,
                        help="keep retrying a request refused with UNAVAILABLE for this long (default: 120)")

    ray = parser.add_argument_group("Ray engine (--engine ray)")
    ray.add_argument("--ray-address", default=None, help="join this Ray cluster (HOST:PORT, or 'auto'); default: start a local one")
    ray.add_argument("--actors", type=Ranged(int, 1, 4096), default=None, help="classifier actors, each loading the bundle once (default: 2)")
    ray.add_argument("--actor-cpus", type=Ranged(float, 0.0, 1024.0, low_open=True), default=None,
                     help="CPUs each actor reserves (default: what is left after one CPU in eight, at least one, for read tasks, "
                          "shared among the actors)")
    parser.set_defaults(handler=run_batch, parser=parser)


__all__ = ["EXIT_ROW_ERRORS", "register", "run_batch"]
