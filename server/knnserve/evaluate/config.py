"""What an evaluation run does: indexes, sweeps, modes, baselines, tuning and output, as frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from knnserve.errors import InvalidInputError
from knnserve.evaluate.systems.peer_catalog import PEERS
from knnserve.index.spec import STORAGES

MODE_CHOICES: tuple[str, ...] = ("batch", "single", "both")
# The harness's own yardsticks, then the peer libraries (each in its own child process: systems/peers.py).
BASELINES: tuple[str, ...] = ("faiss", "sklearn", "naive", "matmul", *PEERS)
# Sweep names a user may write, mapped to the KnnQuery field they set.
SWEEP_NAMES: dict[str, str] = {"nprobe": "nprobe", "efSearch": "ef_search", "ef_search": "ef_search"}
# Which index kind (ResolvedSpec.kind) each search parameter applies to.
PARAMETER_KIND: dict[str, str] = {"nprobe": "ivf", "ef_search": "hnsw"}


@dataclass(frozen=True)
class IndexRequest:
    """One index to evaluate: a spec (alias or FAISS factory string) and how to store uint8 vectors."""

    spec: str
    storage: str = "auto"

    @property
    def label(self) -> str:
        """The request as written on the command line (``SPEC`` or ``SPEC@float32``)."""
        return self.spec if self.storage == "auto" else f"{self.spec}@{self.storage}"


@dataclass(frozen=True)
class Sweep:
    """Values of one search parameter (``nprobe`` or ``ef_search``) to try on every index that has it."""

    parameter: str
    values: tuple[int, ...]


def parse_index_request(text: str, default_storage: str = "auto") -> IndexRequest:
    """Parse ``SPEC`` or ``SPEC@STORAGE`` (storage ``auto``, ``uint8`` or ``float32``); FAISS specs never contain ``@``."""
    spec, _, storage = text.strip().partition("@")
    storage = storage.strip() or default_storage
    if not spec.strip():
        raise InvalidInputError("index", "SPEC or SPEC@STORAGE, e.g. hnsw or flat@float32", repr(text))
    if storage not in STORAGES:
        raise InvalidInputError("index storage", f"one of {', '.join(STORAGES)} after '@'", repr(storage))
    return IndexRequest(spec=spec.strip(), storage=storage)


def parse_sweep(text: str) -> Sweep:
    """Parse ``nprobe=1,2,4`` or ``efSearch=16,32``: a parameter name and increasing positive integers."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or name not in SWEEP_NAMES:
        raise InvalidInputError("sweep", f"NAME=V1,V2,... with NAME one of {', '.join(SWEEP_NAMES)}", repr(text))
    try:
        numbers = tuple(sorted({int(v) for v in values.split(",") if v.strip()}))
    except ValueError:
        raise InvalidInputError("sweep", "comma-separated integers after '='", repr(text)) from None
    if not numbers or numbers[0] < 1:
        raise InvalidInputError("sweep", "at least one integer >= 1", repr(text))
    return Sweep(parameter=SWEEP_NAMES[name], values=numbers)


@dataclass(frozen=True)
class EvaluateConfig:
    """Everything ``knnserve evaluate`` needs; defaults are the CLI's.

    Attributes
    ----------
    dataset, data_dir, download : where the data comes from (see ``knnserve.data.load_dataset``).
    indexes : indexes built in-process; ``sweeps`` apply to those that have the parameter.
    bundles : trained bundles evaluated in-process as they are, in their own feature space (their
        k-NN preprocessing applied), at the sweep settings of their index kind.
    k : neighbours searched and scored (recall@k).
    vote_k, weights, tie_break : how neighbours vote for the accuracy figures (the model defaults').
    metric : ``l2`` or ``l1`` for every index and the ground truth.
    queries : test rows used (a seeded random subset when smaller than the test split; None = all).
    mode : ``batch`` (all queries in one call, all threads), ``single`` (one query a call, one thread) or ``both``.
    single_queries, exact_single_queries : query subsample for single-query mode, and a smaller one for
        exact indexes, whose single-query cost is O(N).
    repeats, max_run_seconds : timed passes per setting and mode; after a pass, no further pass
        starts once their total exceeds ``max_run_seconds`` (slow settings are timed fewer times).
    threads : FAISS threads in batch mode (None: one per core).
    server, model, server_timeout : ``--server`` mode: also measure a served model through the gRPC client.
    server_tls, server_token : TLS (False, True for the system roots, or a PEM root certificate path)
        and bearer token for that client.
    baselines : any of ``faiss`` (bare IndexFlat search), ``sklearn``, ``naive``, ``matmul``, and the peer libraries
        (``hnswlib``, ``usearch``, ``scann``, ``pynndescent``, ``annoy``, ``voyager``): each peer runs in every feature
        space (the raw rows and each ``--bundle``'s), and with a peer the ``indexes`` are also built over each
        bundle's vectors, so knnserve's rows stand beside the peers' in every space.
    naive_queries : rows the per-row numpy loop runs on (its time is extrapolated).
    target_recall, tune_queries : tuning of nprobe/efSearch on held-out training rows (reported; the
        evaluation never writes a bundle: ``knnserve tune`` writes a tuned bundle version).
    recall_epsilon : slack added to the true k-th distance (Euclidean/L1 scale) for recall.
    cache_dir, use_cache : ground-truth cache folder (None: ``<data cache>/groundtruth``); ``use_cache=False`` turns it off.
    out : output folder; ``save_raw`` also writes every run's neighbour ids there.
    command : the command line to record in the report (the CLI passes its argv; empty: the config's repr).
    """

    out: Path
    dataset: str | None = None
    data_dir: Path | None = None
    download: bool = True
    indexes: tuple[IndexRequest, ...] = ()
    bundles: tuple[Path, ...] = ()
    sweeps: tuple[Sweep, ...] = ()
    k: int = 10
    vote_k: int = 5
    weights: str = "uniform"
    tie_break: str = "nearest"
    metric: str = "l2"
    queries: int | None = None
    mode: str = "both"
    single_queries: int = 1000
    exact_single_queries: int = 200
    repeats: int = 3
    max_run_seconds: float = 60.0
    threads: int | None = None
    server: str | None = None
    model: str | None = None
    server_timeout: float = 120.0
    server_tls: bool | Path = False
    server_token: str | None = field(default=None, repr=False)
    baselines: tuple[str, ...] = ()
    naive_queries: int = 20
    target_recall: float | None = None
    tune_queries: int = 1000
    recall_epsilon: float = 1e-3
    cache_dir: Path | None = None
    use_cache: bool = True
    seed: int = 0
    save_raw: bool = False
    progress: bool = True
    command: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        positive = {
            "k": self.k,
            "vote_k": self.vote_k,
            "single_queries": self.single_queries,
            "exact_single_queries": self.exact_single_queries,
            "repeats": self.repeats,
            "naive_queries": self.naive_queries,
            "tune_queries": self.tune_queries,
        }
        for name, value in positive.items():
            if value < 1:
                raise InvalidInputError(name, "an integer >= 1", value)
        if self.queries is not None and self.queries < 1:
            raise InvalidInputError("queries", "an integer >= 1", self.queries)
        if self.mode not in MODE_CHOICES:
            raise InvalidInputError("mode", f"one of {', '.join(MODE_CHOICES)}", repr(self.mode))
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise InvalidInputError("baseline", f"any of {', '.join(BASELINES)}", ", ".join(unknown))
        if (self.server is None) != (self.model is None):
            raise InvalidInputError("server", "--server HOST:PORT and --model NAME together", f"server={self.server!r}, model={self.model!r}")
        if not self.indexes and not self.bundles and self.server is None:
            raise InvalidInputError("index", "at least one --index, --bundle, or --server with --model", "none")
        if self.peers and self.metric != "l2":
            raise InvalidInputError("metric", "l2 with peer baselines (they are compared under L2)", repr(self.metric))
        if self.target_recall is not None and not 0.0 < self.target_recall <= 1.0:
            raise InvalidInputError("target_recall", "a fraction in (0, 1]", self.target_recall)
        if self.recall_epsilon < 0:
            raise InvalidInputError("recall_epsilon", "a number >= 0", self.recall_epsilon)
        if self.max_run_seconds <= 0:
            raise InvalidInputError("max_run_seconds", "a number > 0", self.max_run_seconds)
        parameters = [s.parameter for s in self.sweeps]
        if len(parameters) != len(set(parameters)):
            raise InvalidInputError("sweep", "each parameter swept at most once", ", ".join(parameters))

    @property
    def peers(self) -> tuple[str, ...]:
        """The peer libraries asked for, in the order given."""
        return tuple(b for b in self.baselines if b in PEERS)

    @property
    def search_k(self) -> int:
        """Neighbours each search returns: enough for recall@k and for the vote."""
        return max(self.k, self.vote_k)

    @property
    def timed_modes(self) -> tuple[str, ...]:
        """The timing modes this run measures."""
        return ("batch", "single") if self.mode == "both" else (self.mode,)

    def sweep_for(self, kind: str) -> Sweep | None:
        """The sweep that applies to an index of this kind (``ivf`` or ``hnsw``), if any."""
        for sweep in self.sweeps:
            if PARAMETER_KIND[sweep.parameter] == kind:
                return sweep
        return None
