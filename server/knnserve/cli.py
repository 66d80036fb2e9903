"""Command line: argument parsing only; every command calls the library functions that do the work."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from knnserve import __version__
from knnserve.errors import KnnServeError
from knnserve.index import ALIASES, METRICS
from knnserve.vote import TIE_BREAKS, WEIGHTS

Handler = Callable[[argparse.Namespace], int]


def _k_or_auto(text: str) -> int | str:
    return "auto" if text == "auto" else _positive_int(text)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _add_dataset_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", default=None, help="registered dataset name (default: fashion-mnist); see `knnserve data list`")
    source.add_argument("--data-dir", type=Path, default=None, help="folder with IDX, CIFAR binary or .npz files")
    parser.add_argument("--no-download", action="store_true", help="never download; fail if the dataset is not on disk")


def _add_search_args(parser: argparse.ArgumentParser, *, training: bool) -> None:
    """Voting and search-effort options; at training time they become the bundle's defaults."""
    if training:
        k_help = "neighbours that vote, or 'auto' to choose k (and weights) by cross-validation on the training split (default: auto)"
        note = "stored in the bundle as its default"
        defaults = {"weights": "uniform, or chosen by --k auto", "tie-break": "nearest",
                    "nprobe": "min(16, nlist)", "ef-search": "64"}
    else:
        k_help = "neighbours that vote (default: the bundle's)"
        note = "for this run"
        defaults = {name: "the bundle's" for name in ("weights", "tie-break", "nprobe", "ef-search")}
    parser.add_argument("--k", type=_k_or_auto if training else _positive_int, default="auto" if training else None, help=k_help)
    parser.add_argument("--weights", choices=WEIGHTS, default=None,
                        help=f"vote weighting, {note} (default: {defaults['weights']})")
    parser.add_argument("--tie-break", choices=TIE_BREAKS, default=None,
                        help=f"rule for tied votes, {note} (default: {defaults['tie-break']})")
    parser.add_argument("--nprobe", type=_positive_int, default=None,
                        help=f"IVF lists visited per query, {note} (default: {defaults['nprobe']})")
    parser.add_argument("--ef-search", type=_positive_int, default=None,
                        help=f"HNSW search breadth, {note} (default: {defaults['ef-search']})")
    parser.add_argument("--threads", type=_positive_int, default=None, help="FAISS threads (default: one per core)")


def _cmd_train(args: argparse.Namespace) -> int:
    from knnserve.data import load_dataset
    from knnserve.index import set_num_threads
    from knnserve.outputs import manifest_summary
    from knnserve.train import KnnConfig, LinearConfig, save_trained, train_model

    set_num_threads(args.threads)
    dataset = load_dataset(args.dataset, data_dir=args.data_dir, download=not args.no_download)
    print(f"dataset {dataset.name}: {dataset.x_train.shape[0]} train, {dataset.x_test.shape[0]} test, "
          f"{dataset.x_train.dtype} {dataset.image_shape}, {dataset.n_classes} classes ({dataset.source})")
    config = KnnConfig(
        index=args.index,
        metric=args.metric,
        storage=args.storage,
        preprocess=args.preprocess,
        k=args.k,
        weights=args.weights,
        cv_folds=args.cv_folds,
        tie_break=args.tie_break or "nearest",
        nprobe=args.nprobe,
        ef_search=args.ef_search,
    )
    result = train_model(dataset, config, LinearConfig(loss=args.linear, seed=args.seed), progress=not args.no_progress)
    if result.cv is not None:
        best = result.cv.best
        print(f"cross-validation ({result.cv.folds} folds, {result.cv.seconds:.1f} s): k={best.k}, weights={best.weights}, "
              f"preprocess={best.preprocess}, accuracy {best.mean:.2%} ± {best.std:.2%}")
        if args.cv_plot is not None:
            from knnserve.selection.plot import plot_cv_curve

            print(f"cross-validation curve: {plot_cv_curve(result.cv, args.cv_plot, title=dataset.name)}")
    manifest = save_trained(result, dataset, args.out, name=args.name or args.out.name, overwrite=args.overwrite)
    for label, value in manifest_summary(manifest):
        print(f"{label:>18}: {value}")
    print(f"saved bundle to {args.out}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from knnserve.data import read_input_array
    from knnserve.index import set_num_threads
    from knnserve.model import KNNModel
    from knnserve.outputs import write_predictions_csv

    set_num_threads(args.threads)
    model = KNNModel.load(args.model)
    rows = model.prepare(read_input_array(args.input))
    heads: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if args.method in ("knn", "both"):
        result = model.classify_prepared(
            rows,
            k=args.k,
            weights=args.weights,
            tie_break=args.tie_break,
            nprobe=args.nprobe,
            ef_search=args.ef_search,
            progress=not args.no_progress,
        )
        heads["knn"] = (result.predictions, result.probabilities)
    if args.method in ("linear", "both"):
        heads["linear"] = model.predict_linear(rows)
    write_predictions_csv(args.out, heads, model.class_names)
    print(f"wrote {rows.shape[0]} predictions ({', '.join(heads)}) to {args.out}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from knnserve.bundle import read_manifest, verify_files
    from knnserve.outputs import manifest_summary

    manifest = read_manifest(args.model)
    verify_files(Path(args.model), manifest)
    if args.json:
        print(manifest.model_dump_json(indent=2))
    else:
        for label, value in manifest_summary(manifest):
            print(f"{label:>18}: {value}")
    return 0


def _cmd_data_list(args: argparse.Namespace) -> int:
    from knnserve.data import list_datasets

    for name in list_datasets():
        print(name)
    return 0


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    from knnserve.data import fetch_dataset

    path = fetch_dataset(args.name, cache_dir=args.cache_dir)
    print(f"{args.name} is in {path}")
    return 0


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand takes (use as ``parents=[common_options()]``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")
    common.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return common


def _add_train_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", parents=[common_options()], help="index a dataset, evaluate it on the test split, save a bundle")
    _add_dataset_args(parser)
    parser.add_argument("--index", default="flat", help=f"{', '.join(ALIASES)} or a FAISS factory string (default: flat)")
    parser.add_argument("--metric", choices=METRICS, default="l2", help="distance (default: l2)")
    parser.add_argument("--storage", choices=("auto", "uint8", "float32"), default="auto",
                        help="auto keeps uint8 pixels as raw bytes (exact, L2) in IVF lists and HNSW, float32 for Flat "
                             "(fast BLAS batch search); uint8 uses raw bytes for Flat too (4x less memory, slower in "
                             "batch); float32 builds the spec as written (default: auto)")
    _add_search_args(parser, training=True)
    parser.add_argument("--preprocess", default="auto",
                        help="k-NN preprocessing: raw, cosine, pca:D, pca:D+cosine, or auto to choose between raw and "
                             "pca:128+cosine by cross-validation on the training split (default: auto)")
    parser.add_argument("--cv-folds", type=_positive_int, default=5, help="folds for --k/--preprocess auto (default: 5)")
    parser.add_argument("--cv-plot", type=Path, default=None, help="with --k auto, write the CV curve (mean ± std per k) to this PNG")
    parser.add_argument("--linear", choices=("softmax", "svm", "none"), default="softmax",
                        help="linear head trained beside the index; learning rate and λ chosen on a validation split "
                             "of the training data (default: softmax)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the validation split and the linear head's training (default: 0)")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    parser.add_argument("--name", default=None, help="model name (default: the --out folder name)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    parser.set_defaults(handler=_cmd_train)


def _add_predict_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("predict", parents=[common_options()], help="classify the rows of a .npy or IDX file with a bundle")
    parser.add_argument("--model", type=Path, required=True, help="bundle folder")
    parser.add_argument("--input", type=Path, required=True, help=".npy array (allow_pickle=False) or IDX images file (.gz or not)")
    _add_search_args(parser, training=False)
    parser.add_argument("--method", choices=("knn", "linear", "both"), default="knn",
                        help="which head classifies (default: knn); linear needs a bundle trained with --linear")
    parser.add_argument("--out", type=Path, required=True,
                        help="CSV to write: row,label,class_name,probability (with --method both: knn_* and linear_* columns)")
    parser.set_defaults(handler=_cmd_predict)


def _cmd_templates(args: argparse.Namespace) -> int:
    from knnserve.linear.templates import plot_templates
    from knnserve.model import KNNModel

    model = KNNModel.load(args.model)
    print(f"wrote {plot_templates(model, args.out)}")
    return 0


def _add_templates_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("templates", parents=[common_options()],
                            help="draw the linear head's rows of W as images, one template per class")
    parser.add_argument("--model", type=Path, required=True, help="bundle folder with a linear head")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.set_defaults(handler=_cmd_templates)


def _add_info_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("info", parents=[common_options()], help="print a bundle's manifest (after verifying its checksums)")
    parser.add_argument("--model", type=Path, required=True, help="bundle folder")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")
    parser.set_defaults(handler=_cmd_info)


def _add_data_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", parents=[common_options()], help="list or download registered datasets")
    data_sub = parser.add_subparsers(dest="data_command", required=True)
    listing = data_sub.add_parser("list", help="print the registered dataset names")
    listing.set_defaults(handler=_cmd_data_list)
    fetch = data_sub.add_parser("fetch", help="download a registered dataset into the cache and verify it")
    fetch.add_argument("name", help="registered dataset name, e.g. fashion-mnist")
    fetch.add_argument("--cache-dir", type=Path, default=None, help="cache folder (default: $KNNSERVE_DATA or ~/.cache/knnserve)")
    fetch.set_defaults(handler=_cmd_data_fetch)


# -- service commands (serve, classify, models, demo): the work is in knnserve.service -------------


def _add_token_args(parser: argparse.ArgumentParser) -> None:
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token-file", type=Path, default=None, help="file whose first line is the bearer token")
    token.add_argument("--token-env", default=None, help="environment variable holding the bearer token")


def _token(args: argparse.Namespace) -> str | None:
    from knnserve.service.config import read_token

    return read_token(token_file=args.token_file, env_var=args.token_env)


def _add_client_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", required=True, help="HOST:PORT of a knnserve server")
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--tls", action="store_true", help="use TLS with the system's root certificates")
    tls.add_argument("--tls-ca", type=Path, default=None, help="use TLS, trusting this PEM root certificate")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per call (default: 60)")
    _add_token_args(parser)


def _client_tls(args: argparse.Namespace) -> bool | Path:
    return args.tls_ca if args.tls_ca is not None else bool(args.tls)


def _cmd_serve(args: argparse.Namespace) -> int:
    from knnserve.service.commands import run_serve
    from knnserve.service.config import BatchConfig, ServeConfig, ThreadConfig, TlsConfig

    if (args.tls_cert is None) != (args.tls_key is None):
        raise SystemExit("knnserve serve: --tls-cert and --tls-key go together")
    config = ServeConfig(
        models_dir=args.models,
        model_dir=args.model,
        host=args.host,
        port=args.port,
        max_message_bytes=args.max_message_bytes,
        max_rows_per_request=args.max_rows_per_request,
        max_neighbors_per_request=args.max_neighbors_per_request,
        batching=BatchConfig(
            enabled=not args.no_batching,
            max_rows=args.batch_max_rows,
            max_wait_us=args.batch_max_wait_us,
            adaptive=not args.no_adaptive_wait,
            wait_fraction=args.batch_wait_fraction,
        ),
        threads=ThreadConfig(faiss_threads=args.faiss_threads, grpc_workers=args.grpc_workers),
        reflection=not args.no_reflection,
        tls=TlsConfig(cert=args.tls_cert, key=args.tls_key) if args.tls_cert is not None else None,
        token=_token(args),
        blas_threshold=args.blas_threshold,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        grace_s=args.grace,
    )
    return run_serve(config, log_level=args.log_level, json_logs=args.log_format == "json")


def _add_serve_parser(sub: argparse._SubParsersAction) -> None:
    from knnserve.service.config import (
        DEFAULT_BLAS_THRESHOLD,
        DEFAULT_MAX_MESSAGE_BYTES,
        DEFAULT_MAX_NEIGHBORS_PER_REQUEST,
        DEFAULT_MAX_ROWS_PER_REQUEST,
        DEFAULT_PORT,
        BatchConfig,
    )

    parser = sub.add_parser("serve", parents=[common_options()], help="serve model bundles over gRPC")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--models", type=Path, default=None, help="folder of bundles laid out NAME/VERSION/")
    source.add_argument("--model", type=Path, default=None, help="one bundle folder, served under its manifest's name")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0 picks one)")
    parser.add_argument("--max-message-bytes", type=_positive_int, default=DEFAULT_MAX_MESSAGE_BYTES,
                        help=f"largest request accepted (default: {DEFAULT_MAX_MESSAGE_BYTES})")
    parser.add_argument("--max-rows-per-request", type=_positive_int, default=DEFAULT_MAX_ROWS_PER_REQUEST,
                        help=f"default: {DEFAULT_MAX_ROWS_PER_REQUEST}")
    parser.add_argument("--max-neighbors-per-request", type=_positive_int, default=DEFAULT_MAX_NEIGHBORS_PER_REQUEST,
                        help=f"limit on rows x k per request (default: {DEFAULT_MAX_NEIGHBORS_PER_REQUEST})")
    parser.add_argument("--no-batching", action="store_true", help="search every request on its own (no dynamic batching)")
    parser.add_argument("--batch-max-rows", type=_positive_int, default=BatchConfig.max_rows,
                        help=f"rows per merged search (default: {BatchConfig.max_rows})")
    parser.add_argument("--batch-max-wait-us", type=int, default=BatchConfig.max_wait_us,
                        help=f"longest wait for company, microseconds (default: {BatchConfig.max_wait_us})")
    parser.add_argument("--batch-wait-fraction", type=float, default=BatchConfig.wait_fraction,
                        help=f"adaptive wait: at most this share of the last search's time (default: {BatchConfig.wait_fraction})")
    parser.add_argument("--no-adaptive-wait", action="store_true", help="always wait max-wait, even without concurrent load")
    parser.add_argument("--faiss-threads", type=_positive_int, default=None, help="OpenMP threads per search (default: sized to the cores)")
    parser.add_argument("--grpc-workers", type=_positive_int, default=None, help="gRPC worker threads (default: sized to the cores)")
    parser.add_argument("--blas-threshold", type=_positive_int, default=DEFAULT_BLAS_THRESHOLD,
                        help=f"rows from which flat search uses BLAS (default: {DEFAULT_BLAS_THRESHOLD})")
    parser.add_argument("--no-reflection", action="store_true", help="turn gRPC server reflection off")
    parser.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate chain (with --tls-key)")
    parser.add_argument("--tls-key", type=Path, default=None, help="PEM private key (with --tls-cert)")
    _add_token_args(parser)
    parser.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port (default: off)")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address of the metrics endpoint (default: 127.0.0.1)")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds calls in flight get at shutdown (default: 10)")
    parser.add_argument("--log-format", choices=("json", "text"), default="json", help="log lines (default: json)")
    parser.set_defaults(handler=_cmd_serve, log_level="INFO")


def _cmd_classify(args: argparse.Namespace) -> int:
    from knnserve.service.commands import run_classify

    return run_classify(
        args.server, args.model, args.input, args.out, version=args.model_version, method=args.method, k=args.k,
        weights=args.weights, tie_break=args.tie_break, nprobe=args.nprobe, ef_search=args.ef_search,
        token=_token(args), tls=_client_tls(args), timeout=args.timeout,
    )


def _add_classify_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("classify", parents=[common_options()], help="classify a .npy or IDX file on a knnserve server")
    _add_client_args(parser)
    parser.add_argument("--model", required=True, help="model name (see `knnserve models`)")
    parser.add_argument("--model-version", type=_positive_int, default=None, help="model version (default: the newest)")
    parser.add_argument("--input", type=Path, required=True, help=".npy array or IDX images file")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write: row,label,class_name,probability")
    parser.add_argument("--method", choices=("knn", "linear", "both"), default="knn",
                        help="which head(s) to run (default: knn); both writes knn_* and linear_* columns")
    parser.add_argument("--k", type=_positive_int, default=None, help="neighbours that vote (default: the model's)")
    parser.add_argument("--weights", choices=WEIGHTS, default=None, help="vote weighting (default: the model's)")
    parser.add_argument("--tie-break", choices=TIE_BREAKS, default=None, help="rule for tied votes (default: the model's)")
    parser.add_argument("--nprobe", type=_positive_int, default=None, help="IVF lists visited (default: the model's)")
    parser.add_argument("--ef-search", type=_positive_int, default=None, help="HNSW search breadth (default: the model's)")
    parser.set_defaults(handler=_cmd_classify)


def _cmd_models(args: argparse.Namespace) -> int:
    from knnserve.service.commands import run_models

    return run_models(args.server, token=_token(args), tls=_client_tls(args), timeout=args.timeout)


def _add_models_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", parents=[common_options()], help="list a server's models, one a line, name first")
    _add_client_args(parser)
    parser.set_defaults(handler=_cmd_models)


def _cmd_demo(args: argparse.Namespace) -> int:
    from knnserve.service.demo import run_demo

    run_demo(models_dir=args.models, dataset=args.dataset, data_dir=args.data_dir, index=args.index,
             linear=not args.no_linear, request_rows=args.request_rows, concurrency=args.concurrency,
             progress=not args.no_progress)
    return 0


def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", parents=[common_options()],
                            help="train a bundle if needed, serve it, classify the test split through the client, report")
    parser.add_argument("--models", type=Path, default=Path("models"), help="bundles folder NAME/VERSION/ (default: ./models)")
    parser.add_argument("--dataset", default=None, help="registered dataset (default: fashion-mnist)")
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with the dataset files")
    parser.add_argument("--index", default="flat", help="index spec for a bundle trained here (default: flat)")
    parser.add_argument("--no-linear", action="store_true", help="train a new bundle without the linear head")
    parser.add_argument("--request-rows", type=_positive_int, default=100, help="rows per request (default: 100)")
    parser.add_argument("--concurrency", type=_positive_int, default=4, help="concurrent clients (default: 4)")
    parser.set_defaults(handler=_cmd_demo)


# -- evaluate: exact vs approximate search; the work is in knnserve.evaluate -----------------------


def _sweep(text: str) -> object:
    from knnserve.evaluate import parse_sweep

    try:
        return parse_sweep(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from knnserve.evaluate import EvaluateConfig, parse_index_request, run_evaluate
    from knnserve.evaluate.report import summary_lines

    config = EvaluateConfig(
        out=args.out, dataset=args.dataset, data_dir=args.data_dir, download=not args.no_download,
        indexes=tuple(parse_index_request(text, args.storage) for text in args.index), bundles=tuple(args.bundle),
        sweeps=tuple(args.sweep),
        k=args.k, vote_k=args.vote_k, weights=args.weights, tie_break=args.tie_break, metric=args.metric,
        queries=args.queries, mode=args.mode, single_queries=args.single_queries,
        exact_single_queries=args.exact_single_queries, repeats=args.repeats, max_run_seconds=args.max_run_seconds,
        threads=args.threads, server=args.server, model=args.model, server_timeout=args.server_timeout,
        server_tls=_client_tls(args), server_token=_token(args),
        baselines=tuple(dict.fromkeys(args.baseline)), naive_queries=args.naive_queries,
        target_recall=args.target_recall, tune_queries=args.tune_queries, write_default=args.write_default,
        recall_epsilon=args.recall_epsilon, cache_dir=args.cache_dir, use_cache=not args.no_cache, seed=args.seed,
        save_raw=args.save_raw, progress=not args.no_progress,
    )
    results = run_evaluate(config)
    for line in summary_lines(results, args.out):
        print(line)
    return 0


def _add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    from knnserve.evaluate.config import BASELINES, MODES, STORAGES

    parser = sub.add_parser("evaluate", parents=[common_options()],
                            help="exact vs approximate search: recall@k, accuracy, latency, QPS, memory; writes results.json, report.md, plots")
    _add_dataset_args(parser)
    parser.add_argument("--index", action="append", default=[], metavar="SPEC[@STORAGE]",
                        help=f"index to build and measure (repeatable): {', '.join(ALIASES)} or a FAISS factory string; "
                             f"@STORAGE ({', '.join(STORAGES)}) as in `knnserve train --storage`, e.g. flat@uint8")
    parser.add_argument("--storage", choices=STORAGES, default="auto",
                        help="storage of --index specs without @STORAGE, as in `knnserve train --storage` (default: auto)")
    parser.add_argument("--bundle", action="append", type=Path, default=[], metavar="BUNDLE",
                        help="also evaluate a trained bundle as it is, in its own feature space (its k-NN preprocessing), "
                             "at the sweep of its index kind; with --server, the bundle the server serves (repeatable)")
    parser.add_argument("--sweep", action="append", type=_sweep, default=[], metavar="NAME=V1,V2,...",
                        help="search settings to try, e.g. nprobe=1,2,4,8 or efSearch=16,32,64 (repeatable; each applies "
                             "to the indexes that have the parameter; default: the index's default setting)")
    parser.add_argument("--k", type=_positive_int, default=10, help="neighbours searched; recall@k (default: 10)")
    parser.add_argument("--vote-k", type=_positive_int, default=5, help="neighbours that vote for the accuracy figures (default: 5)")
    parser.add_argument("--weights", choices=WEIGHTS, default="uniform", help="vote weighting (default: uniform)")
    parser.add_argument("--tie-break", choices=TIE_BREAKS, default="nearest", help="rule for tied votes (default: nearest)")
    parser.add_argument("--metric", choices=METRICS, default="l2", help="distance (default: l2)")
    parser.add_argument("--queries", type=_positive_int, default=None, help="test rows used as queries (default: all; fewer: a seeded subset)")
    parser.add_argument("--mode", choices=MODES, default="both",
                        help="batch: all queries per call, all threads; single: one query per call, one thread (default: both)")
    parser.add_argument("--single-queries", type=_positive_int, default=1000, help="queries timed in single mode (default: 1000)")
    parser.add_argument("--exact-single-queries", type=_positive_int, default=200,
                        help="queries timed in single mode on exact (O(N)) indexes (default: 200)")
    parser.add_argument("--repeats", type=_positive_int, default=3, help="timed passes per setting and mode; medians reported (default: 3)")
    parser.add_argument("--max-run-seconds", type=float, default=60.0,
                        help="start no further pass of a setting once its passes took this long (default: 60)")
    parser.add_argument("--threads", type=_positive_int, default=None, help="FAISS threads in batch mode (default: one per core)")
    parser.add_argument("--server", default=None, help="HOST:PORT of a knnserve server: also measure --model over gRPC")
    parser.add_argument("--model", default=None, help="served model name (with --server)")
    parser.add_argument("--server-timeout", type=float, default=120.0, help="seconds per gRPC call (default: 120)")
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--tls", action="store_true", help="with --server: TLS with the system's root certificates")
    tls.add_argument("--tls-ca", type=Path, default=None, help="with --server: TLS, trusting this PEM root certificate")
    _add_token_args(parser)
    parser.add_argument("--baseline", action="append", choices=BASELINES, default=[],
                        help="also measure: faiss (bare IndexFlat), sklearn (brute, child process), naive (per-row numpy loop), "
                             "matmul (float32 GEMM bound) (repeatable)")
    parser.add_argument("--naive-queries", type=_positive_int, default=20, help="rows the naive loop runs; extrapolated (default: 20)")
    parser.add_argument("--target-recall", type=float, default=None,
                        help="find the smallest nprobe / efSearch reaching this recall@k on held-out training rows")
    parser.add_argument("--tune-queries", type=_positive_int, default=1000, help="training rows held out for tuning (default: 1000)")
    parser.add_argument("--write-default", type=Path, default=None, metavar="BUNDLE",
                        help="write the tuned value into this bundle as its default (rewrites its manifest)")
    parser.add_argument("--recall-epsilon", type=float, default=1e-3,
                        help="slack on the true k-th distance (Euclidean / L1 scale) for recall (default: 1e-3)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="ground-truth cache (default: <data cache>/groundtruth)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the ground-truth cache")
    parser.add_argument("--seed", type=int, default=0, help="seed of query subsets and held-out rows (default: 0)")
    parser.add_argument("--save-raw", action="store_true", help="also write every run's neighbours to OUT/raw/")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json, report.md and the PNG plots")
    parser.set_defaults(handler=_cmd_evaluate)


def build_parser() -> argparse.ArgumentParser:
    """The ``knnserve`` argument parser with all its subcommands."""
    parser = argparse.ArgumentParser(
        prog="knnserve",
        description="k-NN and linear image classification over FAISS: train bundles, predict, serve over gRPC.",
    )
    parser.add_argument("--version", action="version", version=f"knnserve {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(sub)
    _add_predict_parser(sub)
    _add_info_parser(sub)
    _add_templates_parser(sub)
    _add_data_parser(sub)
    _add_serve_parser(sub)
    _add_classify_parser(sub)
    _add_models_parser(sub)
    _add_demo_parser(sub)
    _add_evaluate_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``knnserve`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    try:
        return handler(args)
    except KnnServeError as exc:
        print(f"knnserve: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
