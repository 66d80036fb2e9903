"""Commands on a bundle on disk: ``predict`` (classify a file), ``info`` (its manifest), ``templates`` (W as images)."""

from __future__ import annotations

import argparse
from pathlib import Path

from knnserve.cli.options import add_common_options, add_query_options, add_threads_option, query_from_args

HEAD_CHOICES = ("knn", "linear", "both")


def heads_of(method: str) -> tuple[str, ...]:
    """The heads ``--method`` names."""
    return ("knn", "linear") if method == "both" else (method,)


def run_predict(args: argparse.Namespace) -> int:
    """Classify the rows of a file with a bundle, in this process; write a CSV."""
    import numpy as np

    from knnserve.data import read_input_array
    from knnserve.index import set_num_threads
    from knnserve.model import KNNModel
    from knnserve.outputs import write_predictions_csv

    query = query_from_args(args)
    set_num_threads(args.threads)
    model = KNNModel.load(args.model)
    rows = model.prepare(read_input_array(args.input), field="input")
    heads: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if "knn" in heads_of(args.method):
        result = model.classify_prepared(rows, model.resolve(query), progress=not args.no_progress)
        heads["knn"] = (result.predictions, result.probabilities)
    if "linear" in heads_of(args.method):
        heads["linear"] = model.predict_linear(rows)
    write_predictions_csv(args.out, heads, model.class_names)
    print(f"wrote {rows.shape[0]} predictions ({', '.join(heads)}) to {args.out}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Print a bundle's manifest after loading it as the server would (checksums and consistency)."""
    from knnserve.model import KNNModel
    from knnserve.outputs import manifest_summary

    manifest = KNNModel.load(args.model).manifest
    assert manifest is not None
    if args.json:
        print(manifest.model_dump_json(indent=2))
    else:
        for label, value in manifest_summary(manifest):
            print(f"{label:>18}: {value}")
    return 0


def run_templates(args: argparse.Namespace) -> int:
    """Draw the linear head's templates."""
    from knnserve.linear.templates import plot_templates
    from knnserve.model import KNNModel

    print(f"wrote {plot_templates(KNNModel.load(args.model), args.out)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``predict``, ``info`` and ``templates``."""
    parser = sub.add_parser("predict", help="classify the rows of a .npy or IDX file with a bundle")
    add_common_options(parser)
    parser.add_argument("--model", type=Path, required=True, help="bundle folder")
    parser.add_argument("--input", type=Path, required=True, help=".npy array (allow_pickle=False) or IDX images file (.gz or not)")
    add_query_options(parser)
    add_threads_option(parser)
    parser.add_argument("--method", choices=HEAD_CHOICES, default="knn",
                        help="which head classifies (default: knn); linear needs a bundle trained with --linear")
    parser.add_argument("--out", type=Path, required=True,
                        help="CSV to write: row,label,class_name,probability (with --method both: knn_* and linear_* columns)")
    parser.set_defaults(handler=run_predict)

    info = sub.add_parser("info", help="print a bundle's manifest (after loading it as the server does: checksums, consistency)")
    add_common_options(info)
    info.add_argument("--model", type=Path, required=True, help="bundle folder")
    info.add_argument("--json", action="store_true", help="print the manifest as JSON")
    info.set_defaults(handler=run_info)

    templates = sub.add_parser(
        "templates",
        help="draw the linear head's rows of W as images, one template per class; only for pixel-space heads "
             "(a head on learned features, --features cnn, reads an embedding, not an image: it has no templates)")
    add_common_options(templates)
    templates.add_argument("--model", type=Path, required=True, help="bundle folder with a linear head")
    templates.add_argument("--out", type=Path, required=True, help="PNG to write")
    templates.set_defaults(handler=run_templates)


__all__ = ["HEAD_CHOICES", "heads_of", "register"]
