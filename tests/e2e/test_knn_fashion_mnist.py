"""End to end on the real Fashion-MNIST: exact k-NN matches scikit-learn, approximate search stays close."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from knnserve.model import KNNModel
from knnserve_client.wire.query import KnnQuery

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def flat(fashion_mnist) -> KNNModel:
    return KNNModel.fit(fashion_mnist.x_train, fashion_mnist.y_train, class_names=fashion_mnist.class_names)


def test_exact_flat_equals_scikit_learn_on_a_test_slice(fashion_mnist, flat: KNNModel) -> None:
    ds = fashion_mnist
    rows = slice(0, 500)
    x_train = ds.x_train.reshape(len(ds.x_train), -1).astype(np.float32)
    oracle = KNeighborsClassifier(5, algorithm="brute").fit(x_train, ds.y_train)
    expected = oracle.predict(ds.x_test[rows].reshape(500, -1).astype(np.float32))
    ours = flat.classify(ds.x_test[rows], KnnQuery(k=5, tie_break="lowest")).predictions
    # Pixel distances are integers, so two training images can tie at the k-th place; allow that.
    assert np.mean(ours == expected) >= 0.998


def test_full_test_split_accuracy_and_hnsw_agreement(fashion_mnist, flat: KNNModel) -> None:
    ds = fashion_mnist
    exact = flat.classify(ds.x_test, KnnQuery(k=5))
    accuracy = float(np.mean(exact.predictions == ds.y_test))
    assert 0.84 <= accuracy <= 0.87  # k=5 raw-pixel k-NN on Fashion-MNIST is known to be ~85.5%
    hnsw = KNNModel.fit(ds.x_train[:20000], ds.y_train[:20000], index="hnsw")
    small_flat = KNNModel.fit(ds.x_train[:20000], ds.y_train[:20000])
    approx = hnsw.classify(ds.x_test[:2000], KnnQuery(k=10, ef_search=128))
    truth = small_flat.classify(ds.x_test[:2000], KnnQuery(k=10))
    recall = np.mean([len(set(a) & set(t)) / 10 for a, t in zip(approx.ids, truth.ids)])
    assert recall >= 0.98
