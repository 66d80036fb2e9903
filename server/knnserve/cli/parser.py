"""The argument parser class: a usage error is one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_OK = 0
# A bad option or input (argparse errors, InvalidInputError) or a knnserve error (bundle, dataset).
EXIT_USAGE = 2
# A call to a knnserve server failed (unreachable, UNAUTHENTICATED, NOT_FOUND, ...).
EXIT_SERVER = 3
EXIT_INTERRUPTED = 130

EXIT_STATUS_HELP = (
    "exit status: 0 success; 2 bad option or input, or a knnserve error (bundle, dataset); "
    "3 a call to the server failed; 130 interrupted"
)


class KnnParser(argparse.ArgumentParser):
    """argparse with knnserve's error convention; subcommand parsers made from it inherit it."""

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message>`` as one line and exit with status 2."""
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


__all__ = ["EXIT_INTERRUPTED", "EXIT_OK", "EXIT_SERVER", "EXIT_STATUS_HELP", "EXIT_USAGE", "KnnParser"]
