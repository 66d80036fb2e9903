"""Both search kernels against FAISS on a slice of the real Fashion-MNIST: identical ids and distances."""

from __future__ import annotations

import numpy as np
import pytest

from knnserve.kernels import EXACT_INT8, IVF_GEMM_INT8
from knnserve.kernels.runtime import int8_gemm_exact
from knnserve.model import KNNModel
from knnserve_client.wire.query import KnnQuery

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not int8_gemm_exact(), reason="onnxruntime's u8 x s8 GEMM saturates on this CPU")]

BASE_ROWS, QUERY_ROWS, K = 4000, 300, 10


@pytest.fixture(scope="module")
def pixels(fashion_mnist) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    return (fashion_mnist.x_train[:BASE_ROWS].reshape(BASE_ROWS, -1), fashion_mnist.y_train[:BASE_ROWS],
            fashion_mnist.x_test[:QUERY_ROWS].reshape(QUERY_ROWS, -1))


def both_paths(model: KNNModel, queries: np.ndarray, query: KnnQuery) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    rows, resolved = model.prepare(queries), model.resolve(query)
    return model.search(rows, resolved), model.with_kernel("faiss").search(rows, resolved)


@pytest.mark.parametrize("storage", ["auto", "uint8"])  # FAISS Flat float32 (BLAS) and SQ8_direct
def test_exact_int8_finds_what_faiss_flat_finds(pixels, storage: str) -> None:  # type: ignore[no-untyped-def]
    base, labels, queries = pixels
    model = KNNModel.fit(base, labels, index="flat", storage=storage)
    assert model.kernel_plan.name == EXACT_INT8
    (kernel_d, kernel_i), (faiss_d, faiss_i) = both_paths(model, queries, KnnQuery(k=K))
    assert np.array_equal(kernel_i, faiss_i)
    # The kernel's distances are exact integers; FAISS's float32 BLAS path rounds ||x||^2 + ||y||^2 - 2xy.
    assert np.allclose(kernel_d, faiss_d, rtol=1e-5) and (storage == "auto" or np.array_equal(kernel_d, faiss_d))
    q, b = queries[:20].astype(np.int64), base.astype(np.int64)
    exact = (q * q).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * q @ b.T
    order = np.lexsort((np.broadcast_to(np.arange(BASE_ROWS), exact.shape), exact), axis=1)[:, :K]
    assert np.array_equal(kernel_i[:20], order)  # ties by id


@pytest.mark.parametrize("storage", ["auto", "float32"])  # IVF lists of raw bytes (SQ8_direct) and of float32
def test_ivf_gemm_finds_what_faiss_ivf_finds(pixels, storage: str) -> None:  # type: ignore[no-untyped-def]
    base, labels, queries = pixels
    model = KNNModel.fit(base, labels, index="IVF16,Flat", storage=storage)
    assert model.kernel_plan.name == IVF_GEMM_INT8
    for nprobe in (4, 16):
        (kernel_d, kernel_i), (faiss_d, faiss_i) = both_paths(model, queries, KnnQuery(k=K, nprobe=nprobe))
        assert np.array_equal(kernel_i, faiss_i) and np.array_equal(kernel_d, faiss_d)
