"""Option types with their valid ranges, and the option groups several commands share (defined once here).

Every numeric option is parsed by a :class:`Ranged` type, so a value out of range stops the parser
with one line naming the option and the range (``cli/parser.py``), before any work starts.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

from knnserve_client.wire.query import MAX_OPTION_VALUE, TIE_BREAKS, WEIGHTS, KnnQuery


@dataclass(frozen=True)
class Ranged:
    """An argparse ``type``: an int (or float) within [low, high]; ``high=None`` means no upper bound.

    ``allow`` lists words accepted as they are (e.g. ``auto``).
    """

    kind: type = int
    low: float = -math.inf
    high: float | None = None
    allow: tuple[str, ...] = ()
    low_open: bool = False

    def __call__(self, text: str) -> int | float | str:
        if text in self.allow:
            return text
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text!r}") from None
        below = value <= self.low if self.low_open else value < self.low
        if below or (self.high is not None and value > self.high) or (self.kind is float and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"expected {self.describe()}, got {text}")
        return value

    def _number(self, value: float) -> str:
        return str(int(value)) if self.kind is int else f"{value:g}"

    def describe(self) -> str:
        """The valid values in words, e.g. 'an integer >= 1' or 'a number between 0 and 10'."""
        noun = "an integer" if self.kind is int else "a number"
        low = "" if self.low == -math.inf else self._number(self.low)
        high = None if self.high is None else self._number(self.high)
        if self.low_open:
            text = f"{noun} > {low}" + (f" and <= {high}" if high is not None else "")
        elif high is not None and low:
            text = f"{noun} between {low} and {high}"
        elif low:
            text = f"{noun} >= {low}"
        elif high is not None:
            text = f"{noun} <= {high}"
        else:
            text = noun
        return " or ".join([text, *self.allow])


POSITIVE = Ranged(int, 1)
OPTION_VALUE = Ranged(int, 1, MAX_OPTION_VALUE)
PORT = Ranged(int, 0, 65535)
SECONDS = Ranged(float, 0.0)
NON_NEGATIVE_NUMBER = Ranged(float, 0.0)
RECALL = Ranged(float, 0.0, 1.0, low_open=True)
SEED = Ranged(int, 0, 2**32 - 1)


def add_common_options(parser: argparse.ArgumentParser, *, log_level: str = "WARNING") -> None:
    """--log-level and --no-progress, which every command takes."""
    parser.add_argument("--log-level", default=log_level, type=str.upper,
                        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                        help=f"logging level (default: {log_level})")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_dataset_options(parser: argparse.ArgumentParser, *, download: bool = True) -> None:
    """Where the data comes from: a registered dataset or a folder of files."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", default=None, help="registered dataset name (default: fashion-mnist); see `knnserve data list`")
    source.add_argument("--data-dir", type=Path, default=None, help="folder with IDX, CIFAR binary or .npz files")
    if download:
        parser.add_argument("--no-download", action="store_true", help="never download; fail if the dataset is not on disk")


def add_query_options(parser: argparse.ArgumentParser, *, training: bool = False) -> None:
    """The k-NN query (k, weights, tie rule, search effort); at training time the bundle's defaults."""
    if training:
        note = "stored in the bundle as its default"
        defaults = {"k": "auto", "weights": "uniform, or chosen by --k auto", "tie-break": "nearest",
                    "nprobe": "min(16, nlist)", "ef-search": "64"}
        k_help = "neighbors that vote, or 'auto' to choose k (and weights) by cross-validation on the training split"
    else:
        note = "for this run"
        defaults = dict.fromkeys(("k", "weights", "tie-break", "nprobe", "ef-search"), "the model's")
        k_help = "neighbors that vote"
    parser.add_argument("--k", type=Ranged(int, 1, MAX_OPTION_VALUE, allow=("auto",) if training else ()),
                        default="auto" if training else None, help=f"{k_help} (default: {defaults['k']})")
    parser.add_argument("--weights", choices=WEIGHTS, default=None, help=f"vote weighting, {note} (default: {defaults['weights']})")
    parser.add_argument("--tie-break", choices=TIE_BREAKS, default=None,
                        help=f"rule for tied votes, {note} (default: {defaults['tie-break']})")
    parser.add_argument("--nprobe", type=OPTION_VALUE, default=None,
                        help=f"IVF lists visited per query, {note} (default: {defaults['nprobe']})")
    parser.add_argument("--ef-search", type=OPTION_VALUE, default=None,
                        help=f"HNSW search breadth, {note} (default: {defaults['ef-search']})")


def query_from_args(args: argparse.Namespace) -> KnnQuery:
    """The KnnQuery the query options describe (``--k auto`` leaves k unset)."""
    k = None if args.k == "auto" else args.k
    return KnnQuery(k=k, weights=args.weights, tie_break=args.tie_break, nprobe=args.nprobe, ef_search=args.ef_search)


def add_threads_option(parser: argparse.ArgumentParser, *, help_text: str = "FAISS threads (default: one per core)") -> None:
    """--threads: FAISS OpenMP threads for this command."""
    parser.add_argument("--threads", type=POSITIVE, default=None, help=help_text)


def add_token_options(parser: argparse.ArgumentParser) -> None:
    """Where the bearer token comes from (a file or an environment variable; never the command line)."""
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token-file", type=Path, default=None, help="file whose first line is the bearer token")
    token.add_argument("--token-env", default=None, help="environment variable holding the bearer token")


def token_of(args: argparse.Namespace) -> str | None:
    """The bearer token the token options name, or None."""
    from knnserve.service.config import read_token

    return read_token(token_file=args.token_file, env_var=args.token_env)


def add_tls_client_options(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """--tls / --tls-ca for a client connection."""
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--tls", action="store_true", help=f"{prefix}use TLS with the system's root certificates")
    tls.add_argument("--tls-ca", type=Path, default=None, help=f"{prefix}use TLS, trusting this PEM root certificate")


def tls_of(args: argparse.Namespace) -> bool | Path:
    """What the TLS options ask for: False, True (system roots) or a root certificate path."""
    return args.tls_ca if args.tls_ca is not None else bool(args.tls)


def add_client_options(parser: argparse.ArgumentParser, *, timeout: float = 60.0, required: bool = True,
                       server_help: str = "HOST:PORT of a knnserve server") -> None:
    """A connection to a knnserve server: address, TLS, timeout, token."""
    parser.add_argument("--server", required=required, default=None, help=server_help)
    add_tls_client_options(parser)
    parser.add_argument("--timeout", type=Ranged(float, 0.001), default=timeout, help=f"seconds per call (default: {timeout:g})")
    add_token_options(parser)


__all__ = [
    "NON_NEGATIVE_NUMBER",
    "OPTION_VALUE",
    "PORT",
    "POSITIVE",
    "RECALL",
    "SECONDS",
    "SEED",
    "Ranged",
    "add_client_options",
    "add_common_options",
    "add_dataset_options",
    "add_query_options",
    "add_threads_option",
    "add_tls_client_options",
    "add_token_options",
    "query_from_args",
    "tls_of",
    "token_of",
]
