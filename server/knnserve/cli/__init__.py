"""The ``knnserve`` command line: argument parsing only, one module per command family.

``main`` maps what a command raises to one line on stderr and an exit status (``cli/parser.py``):
2 for a bad option or input and knnserve's own errors, 3 when a call to a server failed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from knnserve import __version__
from knnserve.cli import batch, bundles, data, evaluate, examples, remote, serve, train, ui
from knnserve.cli.parser import EXIT_INTERRUPTED, EXIT_SERVER, EXIT_STATUS_HELP, EXIT_USAGE, KnnParser
from knnserve_client.wire.errors import KnnServeError

COMMAND_FAMILIES = (train, bundles, batch, data, serve, remote, examples, evaluate, ui)


def build_parser() -> KnnParser:
    """The ``knnserve`` argument parser with all its subcommands."""
    parser = KnnParser(
        prog="knnserve",
        description="k-NN and linear image classification over FAISS: train bundles, predict, serve over gRPC, evaluate, inspect in a browser.",
        epilog=EXIT_STATUS_HELP,
    )
    parser.add_argument("--version", action="version", version=f"knnserve {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for family in COMMAND_FAMILIES:
        family.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``knnserve`` console script; returns the exit status."""
    from knnserve_client.wire.status import KnnServeClientError

    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(words)
    args.argv = words
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args))
    except KnnServeError as exc:
        print(f"knnserve {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KnnServeClientError as exc:
        print(f"knnserve {args.command}: error: the server call failed: {exc}", file=sys.stderr)
        return EXIT_SERVER
    except KeyboardInterrupt:
        print(f"knnserve {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


__all__ = ["build_parser", "main"]
