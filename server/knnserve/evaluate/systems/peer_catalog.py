"""The peer libraries the harness compares knnserve with, and the build and search settings each one's own
documentation recommends (cited beside each).

One build per library (the documented default or recommendation; building several per library, as
ann-benchmarks does, would not fit the 2-core machine's time budget), swept over the search knob the
library documents as its speed/accuracy trade-off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from knnserve.errors import InvalidInputError

PEERS: tuple[str, ...] = ("hnswlib", "usearch", "scann", "pynndescent", "annoy", "voyager")
# PyPI distribution and import name of each peer (``pip install "knnserve[peers]"`` installs them all).
MODULES: dict[str, str] = {"hnswlib": "hnswlib", "usearch": "usearch", "scann": "scann", "pynndescent": "pynndescent",
                           "annoy": "annoy", "voyager": "voyager"}

# efSearch-like sweep for the graph libraries: from k (the smallest ef hnswlib accepts) to 512.
GRAPH_EF: tuple[int, ...] = (10, 16, 24, 32, 48, 64, 96, 128, 256, 512)


@dataclass(frozen=True)
class PeerPlan:
    """One peer index: its library, build parameters, search settings, and where the choice comes from."""

    library: str
    build: dict[str, Any]
    settings: tuple[dict[str, Any], ...]
    source: str

    @property
    def build_label(self) -> str:
        """``M=16 ef_construction=200``."""
        return " ".join(f"{key}={value}" for key, value in self.build.items())


def peer_plan(library: str, n: int, dim: int) -> PeerPlan:
    """The recommended build and search sweep of ``library`` for ``n`` base vectors of ``dim`` dimensions."""
    if library == "hnswlib":
        # hnswlib README (the Python example) builds with M=16, ef_construction=200; ALGO_PARAMS.md: "ef ...
        # can be anything between k and the size of the dataset", higher ef = more accurate and slower.
        return PeerPlan(library, {"M": 16, "ef_construction": 200}, tuple({"ef": ef} for ef in GRAPH_EF),
                        "hnswlib README example and ALGO_PARAMS.md (ef from k upwards)")
    if library == "voyager":
        # Voyager's Index(): M=12 and ef_construction=200 are its documented defaults; query(query_ef=...)
        # is "the depth of search to perform for this query".
        return PeerPlan(library, {"M": 12, "ef_construction": 200}, tuple({"ef": ef} for ef in GRAPH_EF),
                        "Voyager Index() defaults (M=12, ef_construction=200); query_ef swept")
    if library == "usearch":
        # USearch README: connectivity (M) 16, expansion_add (efConstruction) 128 and expansion_search (ef) 64
        # are its defaults; expansion_search is the search-time knob.
        return PeerPlan(library, {"connectivity": 16, "expansion_add": 128},
                        tuple({"expansion_search": ef} for ef in GRAPH_EF),
                        "USearch README defaults (connectivity=16, expansion_add=128); expansion_search swept")
    if library == "scann":
        # ScaNN docs/algorithms.md: num_leaves about sqrt(n) for partitioning, AH scoring with
        # dimensions_per_block=2, exact reordering of more candidates than k; at query time
        # leaves_to_search and the reorder count trade speed for recall.
        leaves = max(2, int(round(math.sqrt(n))))
        settings = tuple({"leaves_to_search": s, "reorder": r}
                         for s in (2, 4, 8, 16, 32, 64) if s <= leaves for r in (40, 160))
        return PeerPlan(library, {"num_leaves": leaves, "dims_per_block": 2, "reorder": 160}, settings,
                        "ScaNN docs/algorithms.md (num_leaves ~ sqrt(n), score_ah(2), reorder); leaves and reorder swept")
    if library == "annoy":
        # Annoy README ("Tradeoffs"): n_trees at build (more = more accurate, larger index), search_k at
        # query (more = more accurate, slower; default n_trees * k). 100 trees is ann-benchmarks' smallest.
        # search_k stops at 50,000: every setting answers all queries, and above that one batch pass over
        # 10,000 784-d queries takes minutes on 2 cores (ann-benchmarks goes to 400,000, one query at a time).
        return PeerPlan(library, {"n_trees": 100},
                        tuple({"search_k": s} for s in (500, 1000, 2000, 5000, 10000, 20000, 50000)),
                        "Annoy README 'Tradeoffs' (n_trees, search_k; search_k cut at 50,000 for time)")
    if library == "pynndescent":
        # pynndescent NNDescent docs: n_neighbors=30 default; query(epsilon): "Values should be in the range
        # 0.0 to 0.5, but should probably not exceed 0.3 without good reason" (default 0.1).
        return PeerPlan(library, {"n_neighbors": 30},
                        tuple({"epsilon": e} for e in (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)),
                        "pynndescent NNDescent.query docs (epsilon 0.0-0.3, default 0.1; n_neighbors=30 default)")
    raise InvalidInputError("baseline", f"a peer library, one of {', '.join(PEERS)}", repr(library))


def installed(library: str) -> bool:
    """True when the peer's Python package can be imported (checked without importing it)."""
    from importlib.util import find_spec

    return find_spec(MODULES[library]) is not None


__all__ = ["GRAPH_EF", "MODULES", "PEERS", "PeerPlan", "installed", "peer_plan"]
