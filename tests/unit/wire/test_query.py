"""KnnQuery: each value checked where the query is made; resolution against a model checks the rest."""

from __future__ import annotations

import numpy as np
import pytest

from knnserve.errors import InvalidInputError
from knnserve.query import QueryBounds, resolve_query
from knnserve_client.wire.v1 import enums
from knnserve_client.wire.query import HEADS, TIE_BREAKS, WEIGHTS, KnnQuery

IVF = QueryBounds.of(ntotal=100, nlist=8, hnsw=False, n_classes=10)
HNSW = QueryBounds.of(ntotal=100, nlist=None, hnsw=True, n_classes=3, max_ef_search=500)
FLAT = QueryBounds.of(ntotal=100, nlist=None, hnsw=False, n_classes=10)


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"k": 0}, "k"), ({"k": -3}, "k"), ({"k": 2.5}, "k"), ({"k": True}, "k"), ({"k": "5"}, "k"), ({"k": 2**32}, "k"),
     ({"nprobe": 0}, "nprobe"), ({"ef_search": 0}, "ef_search"), ({"top_n": -1}, "top_n"),
     ({"weights": "inverse"}, "weights"), ({"tie_break": "random"}, "tie_break")],
)
def test_bad_values_are_refused_when_the_query_is_made(fields: dict, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        KnnQuery(**fields)
    assert info.value.field == field


def test_numpy_integers_become_python_ints() -> None:
    query = KnnQuery(k=np.int64(7), top_n=np.uint32(0))
    assert query.k == 7 and type(query.k) is int and query.top_n == 0


def test_or_defaults_fills_only_unset_fields() -> None:
    merged = KnnQuery(k=3).or_defaults(KnnQuery(k=5, weights="distance", nprobe=4))
    assert merged == KnnQuery(k=3, weights="distance", nprobe=4)


def test_resolve_fills_defaults_and_checks_against_the_index() -> None:
    resolved = resolve_query(KnnQuery(), KnnQuery(k=5, nprobe=4), IVF)
    assert resolved == KnnQuery(k=5, weights="uniform", tie_break="nearest", nprobe=4, ef_search=None, top_n=5)
    assert resolve_query(KnnQuery(top_n=0), KnnQuery(), HNSW).top_n == 0
    assert resolve_query(KnnQuery(), KnnQuery(), HNSW).top_n == 3  # min(5, classes)


@pytest.mark.parametrize(
    ("query", "bounds", "field", "message"),
    [
        (KnnQuery(k=101), FLAT, "k", "between 1 and 100"),
        (KnnQuery(nprobe=9), IVF, "nprobe", "nlist=8"),
        (KnnQuery(nprobe=2), FLAT, "nprobe", "no inverted lists"),
        (KnnQuery(ef_search=16), IVF, "ef_search", "not HNSW"),
        (KnnQuery(top_n=4), HNSW, "top_n", "between 0 and 3"),
        (KnnQuery(ef_search=501), HNSW, "ef_search", "between 1 and 500 \\(the server's limit\\)"),
        (KnnQuery(ef_search=2**31), HNSW, "ef_search", "between 1 and 500"),
    ],
)
def test_resolve_names_the_field_and_the_range(query: KnnQuery, bounds: QueryBounds, field: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        resolve_query(query, KnnQuery(), bounds)
    assert info.value.field == field


def test_a_default_knob_the_index_lacks_is_dropped_not_an_error() -> None:
    assert resolve_query(KnnQuery(), KnnQuery(ef_search=64), FLAT).ef_search is None


def test_names_are_the_same_in_the_query_and_the_proto_enums() -> None:
    assert tuple(enums.WEIGHTING.numbers) == WEIGHTS
    assert tuple(enums.TIE_BREAK.numbers) == TIE_BREAKS
    assert tuple(enums.HEAD.numbers) == HEADS


def test_wire_enums_round_trip_and_name_the_field() -> None:
    for table in (enums.WEIGHTING, enums.TIE_BREAK, enums.HEAD, enums.DTYPE):
        for name, number in table.numbers.items():
            assert table.from_wire(table.to_wire(name)) == name and number > 0
        assert table.from_wire(0) is None and table.to_wire(None) is None
    with pytest.raises(InvalidInputError, match="weights: expected one of WEIGHTING_UNIFORM, WEIGHTING_DISTANCE, got 9"):
        enums.WEIGHTING.from_wire(9)
    with pytest.raises(InvalidInputError, match="tie_break: expected one of nearest, lowest"):
        enums.TIE_BREAK.to_wire("middle")
