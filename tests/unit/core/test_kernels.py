"""The search kernels against FAISS on tiny seeded data: identical ids (ties broken by id), distances, the plan."""

from __future__ import annotations

import numpy as np
import pytest

from knnserve.index import backend
from knnserve.kernels import EXACT_INT8, FAISS, IVF_GEMM_INT8, plan_kernel
from knnserve.index.backend import exact_uint8
from knnserve.kernels.exact_int import ExactInt8Flat
from knnserve.kernels.ivf_gemm import MISSING_DISTANCE, IvfGemmInt8
from knnserve.kernels.onnx_proto import Node, ValueInfo, model_bytes
from knnserve.kernels.runtime import int8_gemm_exact
from knnserve.model import KNNModel
from knnserve_client.wire.query import KnnQuery

needs_exact_int8 = pytest.mark.skipif(not int8_gemm_exact(), reason="onnxruntime's u8 x s8 GEMM saturates on this CPU")


def exact_neighbours(base: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest by int64 squared L2, ties by id: the reference both kernels must equal."""
    diff = rows.astype(np.int64)[:, None, :] - base.astype(np.int64)[None, :, :]
    squared = (diff * diff).sum(axis=2)
    order = np.lexsort((np.broadcast_to(np.arange(base.shape[0]), squared.shape), squared), axis=1)[:, :k]
    return np.take_along_axis(squared, order, axis=1), order


def tied_pixels(seed: int, n: int, d: int) -> np.ndarray:
    """uint8 vectors with the extreme values 0 and 255 (the saturation case) and exact duplicates (ties)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, d), dtype=np.uint8)
    x[: n // 8] = np.where(rng.random((n // 8, d)) < 0.5, 0, 255)
    x[n // 2 : n // 2 + n // 8] = x[: n // 8]  # every early vector has a twin with a higher id
    return x


def test_the_hand_written_onnx_model_runs_in_onnxruntime() -> None:
    from knnserve.kernels.runtime import new_session

    graph = model_bytes([Node("Add", ["X", "C"], ["Y"])], [ValueInfo("X", np.int32, ["n", 3])], [ValueInfo("Y", np.int32, ["n", 3])],
                        initializers={"C": np.array([1, -2, 3], dtype=np.int32)})
    out = new_session(graph).run(None, {"X": np.zeros((2, 3), dtype=np.int32)})[0]
    assert out.tolist() == [[1, -2, 3], [1, -2, 3]]
    with pytest.raises(ValueError, match="negative"):
        Node("TopK", ["a"], ["b"], {"axis": -1}).encode()


@needs_exact_int8
def test_exact_int8_equals_int64_truth_and_faiss_with_ties() -> None:
    base = tied_pixels(0, 400, 16)  # d=16: FAISS's float32 distances are exact too (< 2**24)
    rows = np.concatenate([base[:10], tied_pixels(1, 40, 16)])  # queries on duplicated vectors: ties at distance 0
    kernel = ExactInt8Flat(base)
    distances, ids = kernel.search(rows, 7, threads=2)
    truth_d, truth_i = exact_neighbours(base, rows, 7)
    assert np.array_equal(ids, truth_i) and np.array_equal(distances, truth_d.astype(np.float32))
    assert (ids[:10, 0] == np.arange(10)).all() and (ids[:10, 1] == np.arange(10) + 200).all()  # the twin comes second
    for storage in ("float32", "uint8"):  # FAISS Flat (BLAS path) and SQ8_direct give the same
        model = KNNModel.fit(base, np.zeros(400, dtype=np.int64), index="flat", storage=storage)
        faiss_d, faiss_i = backend.search(model.index, rows.astype(np.float32), 7)
        assert np.array_equal(faiss_i, ids) and np.array_equal(faiss_d, distances)
    assert np.array_equal(kernel.search(rows, 7, threads=1)[1], ids)  # thread count changes nothing


@needs_exact_int8
@pytest.mark.parametrize("storage", ["auto", "float32"])
def test_ivf_gemm_equals_faiss_ivf_at_every_nprobe(storage: str) -> None:
    base = tied_pixels(2, 600, 24)
    rows = np.concatenate([base[:12], tied_pixels(3, 60, 24)])
    model = KNNModel.fit(base, np.zeros(600, dtype=np.int64), index="IVF8,Flat", storage=storage)
    assert model.index_info.factory == ("IVF8,SQ8_direct" if storage == "auto" else "IVF8,Flat")
    kernel = IvfGemmInt8(*backend.ivf_uint8_lists(model.index), d=24)  # type: ignore[misc]
    floats = rows.astype(np.float32)
    for nprobe in (1, 3, 8):
        probes = backend.ivf_probes(model.index, floats, nprobe)
        distances, ids = kernel.search(rows, probes, 9, threads=2)
        faiss_d, faiss_i = backend.search(model.index, floats, 9, nprobe=nprobe)
        assert np.array_equal(ids, faiss_i) and np.array_equal(distances, faiss_d)
    # every list probed is exhaustive search: the int64 truth, ties by id
    truth_d, truth_i = exact_neighbours(base, rows, 9)
    assert np.array_equal(ids, truth_i) and np.array_equal(distances, truth_d.astype(np.float32))


@needs_exact_int8
def test_ivf_gemm_reports_missing_neighbours_as_faiss_does() -> None:
    base = tied_pixels(4, 320, 8)
    model = KNNModel.fit(base, np.zeros(320, dtype=np.int64), index="IVF8,Flat")
    kernel = IvfGemmInt8(*backend.ivf_uint8_lists(model.index), d=8)  # type: ignore[misc]
    rows = base[:5].astype(np.float32)
    k = 200  # more than one list holds: FAISS pads with id -1 and float32's largest value
    distances, ids = kernel.search(base[:5], backend.ivf_probes(model.index, rows, 1), k, threads=1)
    faiss_d, faiss_i = backend.search(model.index, rows, k, nprobe=1)
    assert (faiss_i == -1).any() and np.array_equal(ids, faiss_i) and np.array_equal(distances, faiss_d)
    assert (distances[ids == -1] == MISSING_DISTANCE).all()


def test_plan_follows_exactness() -> None:
    facts = {"factory": "Flat", "metric": "l2", "input_dtype": "uint8", "preprocessed": False, "dim": 784}
    expected = EXACT_INT8 if int8_gemm_exact() else FAISS
    assert plan_kernel(**facts).name == expected  # type: ignore[arg-type]
    assert plan_kernel(**{**facts, "factory": "SQ8_direct"}).name == expected  # type: ignore[arg-type]
    assert plan_kernel(**{**facts, "factory": "IVF64,SQ8_direct"}).name == (IVF_GEMM_INT8 if int8_gemm_exact() else FAISS)  # type: ignore[arg-type]
    refused = {
        "factory": ("HNSW32,SQ8_direct", "no kernel"), "metric": ("l1", "no GEMM form"), "input_dtype": ("float32", "not raw uint8"),
        "preprocessed": (True, "not raw uint8"), "dim": (20000, "overflow"),
    }
    for field, (value, reason) in refused.items():
        plan = plan_kernel(**{**facts, field: value})  # type: ignore[arg-type]
        assert plan.name == FAISS and reason in plan.describe()
    assert plan_kernel(**facts, policy="faiss").describe() == "faiss (kernels turned off)"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="policy"):
        plan_kernel(**facts, policy="fast")  # type: ignore[arg-type]


def test_plan_refuses_a_cpu_whose_int8_gemm_saturates(monkeypatch: pytest.MonkeyPatch) -> None:
    import knnserve.kernels.choice as choice

    monkeypatch.setattr(choice, "int8_gemm_exact", lambda: False)
    plan = plan_kernel(factory="Flat", metric="l2", input_dtype="uint8", preprocessed=False, dim=784)
    assert plan.name == FAISS and "saturates" in plan.describe()


def test_only_integer_rows_in_range_are_sent_to_a_kernel() -> None:
    assert exact_uint8(np.array([[0.0, 255.0, 7.0]], dtype=np.float32)).tolist() == [[0, 255, 7]]  # type: ignore[union-attr]
    for bad in ([[0.5, 1.0]], [[-1.0, 2.0]], [[256.0, 0.0]], [[1e10, 0.0]]):
        assert exact_uint8(np.array(bad, dtype=np.float32)) is None


@needs_exact_int8
def test_model_uses_the_kernel_above_its_threshold_and_faiss_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    import knnserve.kernels.choice as choice

    monkeypatch.setattr(choice, "FLAT_MIN_ROWS", 8)  # the measured threshold is 1 row; test one above it
    base = tied_pixels(5, 300, 12)
    model = KNNModel.fit(base, np.arange(300) % 3, index="flat")
    assert model.kernel_plan.min_rows == 8
    assert model.kernel_plan.name == EXACT_INT8 and model.with_kernel("faiss").kernel_plan.name == FAISS
    calls: list[int] = []
    original = ExactInt8Flat.search
    monkeypatch.setattr(ExactInt8Flat, "search", lambda self, rows, k, threads: calls.append(len(rows)) or original(self, rows, k, threads))
    query = model.resolve(KnnQuery(k=4))
    small, large = model.prepare(base[:7]), model.prepare(base[:40])
    model.search(small, query)
    model.search(large, query)
    model.search(large + 0.5, query)  # not integers: the kernel would not be exact, FAISS answers
    model.with_kernel("faiss").search(large, query)
    assert calls == [40]
    kernel_answer, faiss_answer = model.search(large, query), model.with_kernel("faiss").search(large, query)
    assert np.array_equal(kernel_answer[1], faiss_answer[1]) and np.array_equal(kernel_answer[0], faiss_answer[0])
    # copies under the same policy share the built kernel
    assert model.with_defaults(KnnQuery(k=2))._dispatch is model._dispatch


@needs_exact_int8
def test_ivf_threshold_counts_queries_per_list() -> None:
    base = tied_pixels(6, 800, 8)
    model = KNNModel.fit(base, np.zeros(800, dtype=np.int64), index="IVF16,Flat")
    dispatch = model._dispatch
    per_list = model.kernel_plan.min_queries_per_list
    assert per_list is not None and model.kernel_plan.name == IVF_GEMM_INT8
    rows_needed = int(np.ceil(per_list * 16 / 4))
    assert dispatch.wants(rows_needed, 4) and not dispatch.wants(rows_needed - 1, 4)
    assert not dispatch.wants(10_000, None)


def test_no_kernel_for_preprocessed_or_float_models() -> None:
    rng = np.random.default_rng(7)
    floats = rng.random((200, 6)).astype(np.float32)
    assert KNNModel.fit(floats, np.zeros(200, dtype=np.int64)).kernel_plan.name == FAISS
    assert KNNModel.fit(floats, np.zeros(200, dtype=np.int64), metric="l1").kernel_plan.name == FAISS


def test_a_built_index_whose_vectors_are_not_bytes_falls_back_to_faiss() -> None:
    from knnserve.kernels.choice import KernelPlan
    from knnserve.kernels.dispatch import KernelDispatch

    index = backend.flat_index(np.full((20, 4), 0.5, dtype=np.float32), "l2")
    dispatch = KernelDispatch(KernelPlan(EXACT_INT8, min_rows=1), index)
    assert dispatch.search(np.zeros((3, 4), dtype=np.float32), 2, None) is None
    assert dispatch.plan.name == FAISS and "not uint8" in dispatch.plan.describe()


@pytest.mark.parametrize("where", [0, 170, 2999])
def test_a_flat_base_is_bytes_only_when_every_block_is(where: int) -> None:
    # The base is converted block by block (256 KiB of floats): a value that is not a byte in any block,
    # the first or the last, sends the index to FAISS; an exact base converts whole.
    base = tied_pixels(8, 3000, 100)
    assert np.array_equal(backend.flat_uint8_vectors(backend.flat_index(base.astype(np.float32), "l2")), base)  # type: ignore[arg-type]
    for bad in (0.5, 256.0, -1.0, np.nan):
        floats = base.astype(np.float32)
        floats[where, 37] = bad
        assert backend.flat_uint8_vectors(backend.flat_index(floats, "l2")) is None, bad
