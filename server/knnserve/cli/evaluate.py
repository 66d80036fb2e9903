"""``knnserve evaluate``: exact vs approximate search side by side (the work is in ``knnserve.evaluate``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from knnserve.cli.options import (
    NON_NEGATIVE_NUMBER,
    POSITIVE,
    RECALL,
    SEED,
    Ranged,
    add_common_options,
    add_dataset_options,
    add_threads_option,
    add_tls_client_options,
    add_token_options,
    tls_of,
    token_of,
)
from knnserve.evaluate.config import BASELINES, MODE_CHOICES
from knnserve.index.spec import ALIASES, METRICS, STORAGES
from knnserve_client.wire.query import TIE_BREAKS, WEIGHTS


def _sweep(text: str) -> object:
    from knnserve.errors import InvalidInputError
    from knnserve.evaluate import parse_sweep

    try:
        return parse_sweep(text)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(f"expected {exc.expected}, got {exc.got}") from None


def run_online(args: argparse.Namespace) -> int:
    """``--online``: hold one class out, add its rows online in steps, print the curve."""
    from knnserve.evaluate.online import markdown
    from knnserve.evaluate.online import run_online as online

    report = online(out=args.out, dataset=args.dataset, data_dir=args.data_dir, download=not args.no_download,
                    index=(args.index or ["flat"])[0], k=args.vote_k, held_out=args.holdout, seed=args.seed)
    print(markdown(report))
    print(f"wrote {args.out / 'online.json'}, online.md, online.png")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """Run the evaluation and print the summary."""
    if args.online:
        return run_online(args)
    from knnserve.evaluate import EvaluateConfig, parse_index_request
    from knnserve.evaluate import run_evaluate as evaluate
    from knnserve.evaluate.report import summary_lines

    config = EvaluateConfig(
        out=args.out, dataset=args.dataset, data_dir=args.data_dir, download=not args.no_download,
        indexes=tuple(parse_index_request(text, args.storage) for text in args.index), bundles=tuple(args.bundle),
        sweeps=tuple(args.sweep), k=args.k, vote_k=args.vote_k, weights=args.weights, tie_break=args.tie_break,
        metric=args.metric, queries=args.queries, mode=args.mode, single_queries=args.single_queries,
        exact_single_queries=args.exact_single_queries, repeats=args.repeats, max_run_seconds=args.max_run_seconds,
        threads=args.threads, server=args.server, model=args.model, server_timeout=args.server_timeout,
        server_tls=tls_of(args), server_token=token_of(args), baselines=tuple(dict.fromkeys(args.baseline)),
        naive_queries=args.naive_queries, target_recall=args.target_recall, tune_queries=args.tune_queries,
        recall_epsilon=args.recall_epsilon, cache_dir=args.cache_dir, use_cache=not args.no_cache, seed=args.seed,
        save_raw=args.save_raw, progress=not args.no_progress, command=("knnserve", *args.argv),
    )
    for line in summary_lines(evaluate(config), args.out):
        print(line)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate``."""
    parser = sub.add_parser("evaluate", help="exact vs approximate search: recall@k, accuracy, latency, QPS, memory; "
                                             "writes results.json, report.md, plots")
    add_common_options(parser)
    add_dataset_options(parser)
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
    parser.add_argument("--k", type=POSITIVE, default=10, help="neighbors searched; recall@k (default: 10)")
    parser.add_argument("--vote-k", type=POSITIVE, default=5, help="neighbors that vote for the accuracy figures (default: 5)")
    parser.add_argument("--weights", choices=WEIGHTS, default="uniform", help="vote weighting (default: uniform)")
    parser.add_argument("--tie-break", choices=TIE_BREAKS, default="nearest", help="rule for tied votes (default: nearest)")
    parser.add_argument("--metric", choices=METRICS, default="l2", help="distance (default: l2)")
    parser.add_argument("--queries", type=POSITIVE, default=None, help="test rows used as queries (default: all; fewer: a seeded subset)")
    parser.add_argument("--mode", choices=MODE_CHOICES, default="both",
                        help="batch: all queries per call, all threads; single: one query per call, one thread (default: both)")
    parser.add_argument("--single-queries", type=POSITIVE, default=1000, help="queries timed in single mode (default: 1000)")
    parser.add_argument("--exact-single-queries", type=POSITIVE, default=200,
                        help="queries timed in single mode on exact (O(N)) indexes (default: 200)")
    parser.add_argument("--repeats", type=POSITIVE, default=3, help="timed passes per setting and mode; medians reported (default: 3)")
    parser.add_argument("--max-run-seconds", type=Ranged(float, 0.0, low_open=True), default=60.0,
                        help="start no further pass of a setting once its passes took this long (default: 60)")
    add_threads_option(parser, help_text="FAISS threads in batch mode (default: one per core)")
    parser.add_argument("--server", default=None, help="HOST:PORT of a knnserve server: also measure --model over gRPC")
    parser.add_argument("--model", default=None, help="served model name (with --server)")
    parser.add_argument("--server-timeout", type=Ranged(float, 0.001), default=120.0, help="seconds per gRPC call (default: 120)")
    add_tls_client_options(parser, prefix="with --server: ")
    add_token_options(parser)
    parser.add_argument("--baseline", action="append", choices=BASELINES, default=[],
                        help="also measure: faiss (bare IndexFlat), sklearn (brute, child process), naive (per-row numpy loop), "
                             "matmul (float32 GEMM bound); or a peer library, each in its own child process with the "
                             "build and sweep its documentation recommends, in every feature space (raw and each "
                             "--bundle's, where the --index specs are then also built): hnswlib, usearch, scann, "
                             "pynndescent, annoy, voyager (pip install 'knnserve[peers]'; docs/evaluate.md) (repeatable)")
    parser.add_argument("--naive-queries", type=POSITIVE, default=20, help="rows the naive loop runs; extrapolated (default: 20)")
    parser.add_argument("--target-recall", type=RECALL, default=None,
                        help="report the smallest nprobe / efSearch reaching this recall@k on held-out training rows "
                             "(to save it in a bundle: knnserve tune)")
    parser.add_argument("--tune-queries", type=POSITIVE, default=1000, help="training rows held out for tuning (default: 1000)")
    parser.add_argument("--recall-epsilon", type=NON_NEGATIVE_NUMBER, default=1e-3,
                        help="slack on the true k-th distance (Euclidean / L1 scale) for recall (default: 1e-3)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="ground-truth cache (default: <data cache>/groundtruth)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the ground-truth cache")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of query subsets and held-out rows (default: 0)")
    parser.add_argument("--save-raw", action="store_true", help="also write every run's neighbors to OUT/raw/")
    parser.add_argument("--online", action="store_true",
                        help="instead: hold one class (--holdout) out of training, add its training rows online in steps "
                             "(1, 5, 20, 100, all), report its accuracy and the overall accuracy after each (first --index, "
                             "--vote-k; docs/online.md); writes online.json, online.md, online.png")
    parser.add_argument("--holdout", default="0", help="with --online: the class held out, by name or index (default: 0)")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json, report.md and the PNG plots")
    parser.set_defaults(handler=run_evaluate)


__all__ = ["register", "run_evaluate"]
