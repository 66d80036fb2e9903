"""``knnserve data list`` and ``knnserve data fetch``: the registered datasets."""

from __future__ import annotations

import argparse
from pathlib import Path

from knnserve.cli.options import add_common_options


def run_list(args: argparse.Namespace) -> int:
    """Print the registered dataset names."""
    from knnserve.data import list_datasets

    for name in list_datasets():
        print(name)
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    """Download a registered dataset into the cache and verify it."""
    from knnserve.data import fetch_dataset

    print(f"{args.name} is in {fetch_dataset(args.name, cache_dir=args.cache_dir)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``data list`` and ``data fetch``."""
    parser = sub.add_parser("data", help="list or download registered datasets")
    add_common_options(parser)
    data_sub = parser.add_subparsers(dest="data_command", required=True)
    listing = data_sub.add_parser("list", help="print the registered dataset names")
    listing.set_defaults(handler=run_list)
    fetch = data_sub.add_parser("fetch", help="download a registered dataset into the cache and verify it")
    fetch.add_argument("name", help="registered dataset name, e.g. fashion-mnist")
    fetch.add_argument("--cache-dir", type=Path, default=None, help="cache folder (default: $KNNSERVE_DATA or ~/.cache/knnserve)")
    fetch.set_defaults(handler=run_fetch)


__all__ = ["register"]
