"""Index specs and search: approximate results checked against exact IndexFlat."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from knnserve.errors import InvalidInputError
from knnserve.index import build_index, ivf_nlist, pq_shape, resolve_spec, search
from knnserve.model import KNNModel
from knnserve_client.wire.query import KnnQuery


def _recall(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


def test_alias_sizes_follow_the_data() -> None:
    assert ivf_nlist(60000) == round(4 * 60000**0.5)
    assert ivf_nlist(1000) == 1000 // 39  # capped: every centroid gets >= 39 training points
    assert pq_shape(784, 60000) == (56, 8)
    m, nbits = pq_shape(64, 3000)
    assert 64 % m == 0 and nbits < 8
    assert resolve_spec("ivfpq", n=60000, d=784).factory == "IVF980,PQ56x8np"
    spec = resolve_spec("hnsw", n=5000, d=32)
    assert spec.factory == "HNSW32" and spec.build_params["efConstruction"] > 40


def test_uint8_l2_is_stored_as_raw_bytes_only_where_exact() -> None:
    assert resolve_spec("flat", n=100, d=8, dtype=np.uint8).factory == "Flat"  # BLAS batch search stays
    assert resolve_spec("flat", n=100, d=8, dtype=np.uint8, storage="uint8").factory == "SQ8_direct"
    assert resolve_spec("IVF4,Flat", n=1000, d=8, dtype=np.uint8).factory == "IVF4,SQ8_direct"
    assert resolve_spec("HNSW16", n=100, d=8, dtype=np.uint8).factory == "HNSW16,SQ8_direct"
    assert resolve_spec("flat", n=100, d=8, dtype=np.uint8, metric="l1", storage="uint8").factory == "Flat"
    assert resolve_spec("flat", n=100, d=8, dtype=np.float32).factory == "Flat"
    assert resolve_spec("flat", n=100, d=8, dtype=np.uint8, storage="float32").factory == "Flat"
    assert resolve_spec("IVF4,PQ4", n=1000, d=8, dtype=np.uint8).factory == "IVF4,PQ4"


@pytest.mark.parametrize("spec", ["ivfpq", "IVF8,PQ4", "PCA8,Flat", "SQ8"])
def test_l1_refused_where_faiss_cannot(spec: str) -> None:
    with pytest.raises(InvalidInputError, match="metric"):
        resolve_spec(spec, n=2000, d=16, metric="l1")


def test_uint8_storage_finds_the_same_neighbours_as_index_flat(pixels) -> None:
    x, _ = pixels
    flat = x.reshape(len(x), -1)
    index, _ = build_index(flat, resolve_spec("flat", n=len(flat), d=flat.shape[1], dtype=np.uint8, storage="uint8"))
    assert isinstance(faiss.downcast_index(index), faiss.IndexScalarQuantizer)
    reference = faiss.IndexFlatL2(flat.shape[1])
    reference.add(flat.astype(np.float32))
    queries = flat[:50].astype(np.float32) + 0.25
    d_ours, i_ours = search(index, queries, 5)
    d_ref, i_ref = reference.search(queries, 5)
    np.testing.assert_allclose(d_ours, d_ref, rtol=1e-4)
    assert _recall(i_ours, i_ref) == 1.0
    assert index.sa_code_size() * 4 == reference.sa_code_size() or index.code_size * 4 == reference.code_size


def test_ivf_uint8_storage_searched_exhaustively_equals_index_flat(pixels) -> None:
    x, _ = pixels
    flat = x.reshape(len(x), -1)
    spec = resolve_spec("IVF8,Flat", n=len(flat), d=flat.shape[1], dtype=np.uint8)
    index, _ = build_index(flat, spec)
    reference = faiss.IndexFlatL2(flat.shape[1])
    reference.add(flat.astype(np.float32))
    queries = flat[:50].astype(np.float32)
    _, i_ours = search(index, queries, 5, nprobe=8)
    _, i_ref = reference.search(queries, 5)
    assert _recall(i_ours, i_ref) == 1.0


@pytest.mark.parametrize("metric", ["l2", "l1"])
@pytest.mark.parametrize("alias,params,floor", [("ivf", {"nprobe": 12}, 0.95), ("hnsw", {"ef_search": 128}, 0.95)])
def test_approximate_recall_against_exact(blobs, metric: str, alias: str, params: dict, floor: float) -> None:
    x_train, _, x_test, _ = blobs
    exact = faiss.IndexFlat(x_train.shape[1], faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_L1)
    exact.add(x_train)
    _, truth = exact.search(x_test, 10)
    index, _ = build_index(x_train, resolve_spec(alias, n=len(x_train), d=x_train.shape[1], metric=metric))
    _, found = search(index, x_test, 10, **params)
    assert _recall(found, truth) >= floor


def test_more_effort_never_hurts_ivf_recall(blobs) -> None:
    x_train, _, x_test, _ = blobs
    exact = faiss.IndexFlatL2(x_train.shape[1])
    exact.add(x_train)
    _, truth = exact.search(x_test, 10)
    index, _ = build_index(x_train, resolve_spec("IVF15,Flat", n=len(x_train), d=x_train.shape[1]))
    recalls = [_recall(search(index, x_test, 10, nprobe=p)[1], truth) for p in (1, 4, 15)]
    assert recalls == sorted(recalls) and recalls[-1] == 1.0  # nprobe = nlist is exhaustive


def test_search_params_do_not_mutate_the_index(blobs) -> None:
    x_train, _, x_test, _ = blobs
    index, _ = build_index(x_train, resolve_spec("IVF8,Flat", n=len(x_train), d=x_train.shape[1]))
    ivf = faiss.extract_index_ivf(index)
    before = ivf.nprobe
    search(index, x_test, 3, nprobe=8)
    assert ivf.nprobe == before


@pytest.mark.parametrize(
    "x,query,field",
    [
        (np.zeros((2, 3), np.float32), KnnQuery(k=1), "x.shape"),  # wrong dimension
        (np.zeros((0, 16), np.float32), KnnQuery(k=1), "x.shape"),  # empty batch
        (np.full((1, 16), np.nan, np.float32), KnnQuery(k=1), "x"),  # NaN
        (np.zeros((1, 16), np.float32), KnnQuery(k=601), "k"),
        (np.zeros((1, 16), np.float32), KnnQuery(k=1, nprobe=3), "nprobe"),  # Flat has no lists
        (np.zeros((1, 16), np.float32), KnnQuery(k=1, ef_search=3), "ef_search"),
    ],
)
def test_bad_search_input_is_refused_before_faiss(blobs, x, query, field) -> None:
    x_train, y_train = blobs[0], blobs[1]
    model = KNNModel.fit(x_train, y_train)
    with pytest.raises(InvalidInputError) as raised:
        model.classify(x, query)
    assert raised.value.field == field


def test_the_faiss_boundary_checks_the_shape_it_needs(blobs) -> None:
    x_train = blobs[0]
    index, _ = build_index(x_train, resolve_spec("flat", n=len(x_train), d=x_train.shape[1]))
    with pytest.raises(InvalidInputError, match="rows"):
        search(index, np.zeros((2, 3), np.float32), 1)


def test_nprobe_above_nlist_is_refused(blobs) -> None:
    x_train, y_train = blobs[0], blobs[1]
    model = KNNModel.fit(x_train, y_train, index="IVF8,Flat")
    with pytest.raises(InvalidInputError, match="nlist=8"):
        model.classify(x_train[:1], KnnQuery(nprobe=9))
