"""Resolving a KnnQuery against a model: defaults filled in, every value checked against the index.

The query type itself (``knnserve_client.wire.query.KnnQuery``) checks each value on its own when
it is made; what needs the model is checked here, once, where a request reaches a model. The
resolved query (every field that applies set, the others None) then travels unchanged to the
batcher, FAISS and the vote.
"""

from __future__ import annotations

from dataclasses import dataclass

from knnserve_client.wire.errors import InvalidInputError
from knnserve_client.wire.limits import DEFAULT_MAX_EF_SEARCH
from knnserve_client.wire.query import DEFAULT_TOP_N, KnnQuery

# What a query falls back to when neither it nor the model's defaults set a field.
BASE_DEFAULTS = KnnQuery(k=5, weights="uniform", tie_break="nearest")


@dataclass(frozen=True)
class QueryBounds:
    """What a model allows: k <= ntotal, nprobe <= nlist (IVF; None otherwise), ef_search <= max_ef_search
    (HNSW; None otherwise), top_n <= n_classes."""

    ntotal: int
    nlist: int | None
    max_ef_search: int | None
    n_classes: int

    @property
    def hnsw(self) -> bool:
        """True when the index takes ef_search."""
        return self.max_ef_search is not None

    @classmethod
    def of(cls, ntotal: int, nlist: int | None, hnsw: bool, n_classes: int,
           max_ef_search: int = DEFAULT_MAX_EF_SEARCH) -> QueryBounds:
        """Bounds of an index with these facts, ef_search capped at ``max_ef_search`` (HNSW only)."""
        return cls(ntotal, nlist, max_ef_search if hnsw else None, n_classes)


def check_bounds(query: KnnQuery, bounds: QueryBounds) -> None:
    """Raise InvalidInputError naming the first set field of ``query`` that ``bounds`` do not allow.

    The one statement of what a model allows: a request's query is checked by ``resolve_query``, a
    bundle's stored defaults by ``consistency.check_defaults``, both through here. A knob the index
    does not have (nprobe without inverted lists, ef_search off HNSW) must be unset.
    """
    if query.nprobe is not None and bounds.nlist is None:
        raise InvalidInputError("nprobe", "unset: this index has no inverted lists", query.nprobe)
    if query.ef_search is not None and not bounds.hnsw:
        raise InvalidInputError("ef_search", "unset: this index is not HNSW", query.ef_search)
    if query.k is not None and query.k > bounds.ntotal:
        raise InvalidInputError("k", f"an integer between 1 and {bounds.ntotal} (the number of indexed vectors)", query.k)
    if query.nprobe is not None and query.nprobe > (bounds.nlist or 0):
        raise InvalidInputError("nprobe", f"an integer between 1 and nlist={bounds.nlist}", query.nprobe)
    if query.ef_search is not None and query.ef_search > (bounds.max_ef_search or 0):
        raise InvalidInputError("ef_search", f"an integer between 1 and {bounds.max_ef_search} (the server's limit)", query.ef_search)
    if query.top_n is not None and query.top_n > bounds.n_classes:
        raise InvalidInputError("top_n", f"an integer between 0 and {bounds.n_classes} (the number of classes)", query.top_n)


def resolve_query(query: KnnQuery, defaults: KnnQuery, bounds: QueryBounds) -> KnnQuery:
    """``query`` with unset fields taken from ``defaults``, validated against ``bounds``.

    A search knob the index does not have is an error when the query sets it, and dropped when
    only the defaults do. Raises InvalidInputError naming the field and the allowed range.
    """
    merged = query.or_defaults(defaults).or_defaults(BASE_DEFAULTS)
    merged = merged.replace(
        nprobe=merged.nprobe if bounds.nlist is not None else query.nprobe,
        ef_search=merged.ef_search if bounds.hnsw else query.ef_search,
        top_n=min(DEFAULT_TOP_N, bounds.n_classes) if merged.top_n is None else merged.top_n,
    )
    check_bounds(merged, bounds)
    return merged


__all__ = ["BASE_DEFAULTS", "QueryBounds", "check_bounds", "resolve_query"]
