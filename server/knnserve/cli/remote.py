"""Commands that talk to a running server through the client: ``classify`` and ``models``."""

from __future__ import annotations

import argparse
from pathlib import Path

from knnserve.cli.bundles import HEAD_CHOICES, heads_of
from knnserve.cli.options import POSITIVE, add_client_options, add_common_options, add_query_options, query_from_args, tls_of, token_of


def run_classify(args: argparse.Namespace) -> int:
    """Classify a file's rows on a server; write a CSV like ``knnserve predict``."""
    from knnserve.commands.remote import classify_file

    classify_file(
        args.server, args.model, args.input, args.out, version=args.model_version, heads=heads_of(args.method),
        query=query_from_args(args), token=token_of(args), tls=tls_of(args), timeout=args.timeout,
    )
    return 0


def run_models(args: argparse.Namespace) -> int:
    """Print the served models, one a line, name first."""
    from knnserve.commands.remote import list_models

    list_models(args.server, token=token_of(args), tls=tls_of(args), timeout=args.timeout)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``classify`` and ``models``."""
    parser = sub.add_parser("classify", help="classify a .npy or IDX file on a knnserve server")
    add_common_options(parser)
    add_client_options(parser)
    parser.add_argument("--model", required=True, help="model name (see `knnserve models`)")
    parser.add_argument("--model-version", type=POSITIVE, default=None, help="model version (default: the newest)")
    parser.add_argument("--input", type=Path, required=True, help=".npy array or IDX images file")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write: row,label,class_name,probability")
    parser.add_argument("--method", choices=HEAD_CHOICES, default="knn",
                        help="which head(s) to run (default: knn); both writes knn_* and linear_* columns")
    add_query_options(parser)
    parser.set_defaults(handler=run_classify)

    models = sub.add_parser("models", help="list a server's models, one a line, name first")
    add_common_options(models)
    add_client_options(models, timeout=10.0)
    models.set_defaults(handler=run_models)


__all__ = ["register", "run_classify", "run_models"]
