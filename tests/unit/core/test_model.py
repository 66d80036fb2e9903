"""KNNModel: input validation, chunked classification, distances on the true scale."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from knnserve.errors import InvalidInputError
from knnserve.model import PREDICT_CHUNK_ROWS, KNNModel
from knnserve_client.wire.query import KnnQuery


def test_l2_distances_are_euclidean_not_squared(blobs) -> None:
    x_train, y_train, x_test, _ = blobs
    model = KNNModel.fit(x_train, y_train)
    distances, ids = model.search(model.prepare(x_test), model.resolve(KnnQuery(k=3)))
    expected = np.linalg.norm(x_test[:, None, :] - x_train[ids], axis=2)
    np.testing.assert_allclose(distances, expected, rtol=1e-3, atol=1e-3)


def test_accepts_images_or_flat_rows(pixels) -> None:
    x, y = pixels
    model = KNNModel.fit(x, y)
    a = model.classify(x[:20]).predictions
    b = model.classify(x[:20].reshape(20, -1)).predictions
    c = model.classify(x[:20].astype(np.float32)).predictions
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize(
    "x,field",
    [
        (np.zeros((1, 5, 5), np.uint8), "x.shape"),
        (np.zeros((0, 6, 6), np.uint8), "x.shape"),
        (np.array([["a"] * 36]), "x.dtype"),
        (np.full((1, 36), np.inf, np.float32), "x"),
    ],
)
def test_prepare_names_the_field(pixels, x, field: str) -> None:
    model = KNNModel.fit(*pixels)
    with pytest.raises(InvalidInputError) as raised:
        model.prepare(x)
    assert raised.value.field == field


def test_chunked_classification_equals_one_search(rng) -> None:
    n = PREDICT_CHUNK_ROWS + 300
    x = rng.normal(size=(2000, 8)).astype(np.float32)
    y = rng.integers(0, 5, 2000)
    queries = rng.normal(size=(n, 8)).astype(np.float32)
    model = KNNModel.fit(x, y)
    chunked = model.classify(queries, KnnQuery(k=3))
    exact = faiss.IndexFlatL2(8)
    exact.add(x)
    _, ids = exact.search(queries, 3)
    np.testing.assert_array_equal(chunked.ids, ids)
    assert chunked.probabilities.shape == (n, 5)


def test_a_vote_at_a_smaller_k_equals_a_direct_call(blobs) -> None:
    x_train, y_train, x_test, _ = blobs
    model = KNNModel.fit(x_train, y_train)
    distances, ids = model.search(model.prepare(x_test), model.resolve(KnnQuery(k=9)))
    merged = model.vote(distances, ids, model.resolve(KnnQuery(k=3)))
    direct = model.classify(x_test, KnnQuery(k=3))
    np.testing.assert_array_equal(merged.predictions, direct.predictions)
    np.testing.assert_array_equal(merged.ids, direct.ids)


def test_labels_outside_class_names_are_refused(pixels) -> None:
    x, y = pixels
    with pytest.raises(InvalidInputError, match="y"):
        KNNModel.fit(x, y, class_names=("only", "two"))
