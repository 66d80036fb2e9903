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
        k_help = "neighbours that vote, or 'auto' to choose k (and weights) by cross-validation on the training split (default: 5)"
        note = "stored in the bundle as its default"
        defaults = {"weights": "uniform, or chosen by --k auto", "tie-break": "nearest",
                    "nprobe": "min(16, nlist)", "ef-search": "64"}
    else:
        k_help = "neighbours that vote (default: the bundle's)"
        note = "for this run"
        defaults = {name: "the bundle's" for name in ("weights", "tie-break", "nprobe", "ef-search")}
    parser.add_argument("--k", type=_k_or_auto if training else _positive_int, default=None, help=k_help)
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
    from knnserve.train import KnnConfig, save_trained, train_knn

    set_num_threads(args.threads)
    dataset = load_dataset(args.dataset, data_dir=args.data_dir, download=not args.no_download)
    print(f"dataset {dataset.name}: {dataset.x_train.shape[0]} train, {dataset.x_test.shape[0]} test, "
          f"{dataset.x_train.dtype} {dataset.image_shape}, {dataset.n_classes} classes ({dataset.source})")
    config = KnnConfig(
        index=args.index,
        metric=args.metric,
        storage=args.storage,
        k=args.k or 5,
        weights=args.weights,
        cv_folds=args.cv_folds,
        tie_break=args.tie_break or "nearest",
        nprobe=args.nprobe,
        ef_search=args.ef_search,
    )
    result = train_knn(dataset, config, progress=not args.no_progress)
    if result.cv is not None:
        best = result.cv.best
        print(f"cross-validation ({result.cv.folds} folds, {result.cv.seconds:.1f} s): k={best.k}, weights={best.weights}, "
              f"accuracy {best.mean:.2%} ± {best.std:.2%}")
        if args.cv_plot is not None:
            from knnserve.selection.plot import plot_cv_curve

            print(f"cross-validation curve: {plot_cv_curve(result.cv, args.cv_plot, title=dataset.name)}")
    manifest = save_trained(result, dataset, args.out, name=args.name or args.out.name, overwrite=args.overwrite)
    for label, value in manifest_summary(manifest):
        print(f"{label:>18}: {value}")
    print(f"saved bundle to {args.out}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from knnserve.data import read_input_array
    from knnserve.index import set_num_threads
    from knnserve.model import KNNModel
    from knnserve.outputs import write_predictions_csv

    set_num_threads(args.threads)
    model = KNNModel.load(args.model)
    x = read_input_array(args.input)
    result = model.classify(
        x,
        k=args.k,
        weights=args.weights,
        tie_break=args.tie_break,
        nprobe=args.nprobe,
        ef_search=args.ef_search,
        progress=not args.no_progress,
    )
    write_predictions_csv(args.out, result.predictions, result.probabilities, model.class_names)
    print(f"wrote {result.predictions.shape[0]} predictions to {args.out}")
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
    parser.add_argument("--storage", choices=("auto", "float32"), default="auto",
                        help="auto keeps uint8 pixels as raw bytes where exact (L2); float32 builds the spec as written")
    _add_search_args(parser, training=True)
    parser.add_argument("--cv-folds", type=_positive_int, default=5, help="folds for --k auto (default: 5)")
    parser.add_argument("--cv-plot", type=Path, default=None, help="with --k auto, write the CV curve (mean ± std per k) to this PNG")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    parser.add_argument("--name", default=None, help="model name (default: the --out folder name)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    parser.set_defaults(handler=_cmd_train)


def _add_predict_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("predict", parents=[common_options()], help="classify the rows of a .npy or IDX file with a bundle")
    parser.add_argument("--model", type=Path, required=True, help="bundle folder")
    parser.add_argument("--input", type=Path, required=True, help=".npy array (allow_pickle=False) or IDX images file (.gz or not)")
    _add_search_args(parser, training=False)
    parser.add_argument("--out", type=Path, required=True, help="CSV to write: row,label,class_name,probability")
    parser.set_defaults(handler=_cmd_predict)


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
    _add_data_parser(sub)
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
