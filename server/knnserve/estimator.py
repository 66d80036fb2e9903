"""KNNClassifier: a scikit-learn-style estimator over the same FAISS engine the server uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from knnserve.bundle import DatasetInfo
from knnserve.errors import InvalidInputError
from knnserve.index import set_num_threads
from knnserve.model import KNNModel
from knnserve_client.wire.query import KnnQuery


class KNNClassifier(ClassifierMixin, BaseEstimator):
    """k-nearest-neighbour classifier backed by a FAISS index.

    Parameters
    ----------
    k : number of neighbours that vote.
    index : ``flat`` (exact), ``ivf``, ``ivfpq``, ``hnsw`` or a FAISS factory string.
    metric : ``l2`` or ``l1``.
    weights : ``uniform`` (majority) or ``distance`` (1/d).
    tie_break : ``nearest`` (tied class with the nearest neighbour) or ``lowest`` (lowest class, as
        scikit-learn does).
    nprobe, ef_search : search effort for IVF / HNSW indexes (``None``: the index's default).
    storage : ``auto`` keeps uint8 inputs as raw bytes where exact (L2); ``float32`` builds as written.
    n_threads : FAISS OpenMP threads (``None``: FAISS's default).
    """

    def __init__(
        self,
        k: int = 5,
        *,
        index: str = "flat",
        metric: str = "l2",
        weights: str = "uniform",
        tie_break: str = "nearest",
        nprobe: int | None = None,
        ef_search: int | None = None,
        storage: str = "auto",
        n_threads: int | None = None,
    ) -> None:
        self.k = k
        self.index = index
        self.metric = metric
        self.weights = weights
        self.tie_break = tie_break
        self.nprobe = nprobe
        self.ef_search = ef_search
        self.storage = storage
        self.n_threads = n_threads

    def query(self) -> KnnQuery:
        """The query these parameters describe (validated here; unset search effort: the index's default)."""
        return KnnQuery(k=self.k, weights=self.weights, tie_break=self.tie_break, nprobe=self.nprobe, ef_search=self.ef_search)

    def fit(self, X: np.ndarray, y: np.ndarray) -> KNNClassifier:
        """Index the training vectors ``X`` (N, ...) with labels ``y`` of any sortable type."""
        query = self.query()
        set_num_threads(self.n_threads)
        X = np.asarray(X)
        self.classes_, encoded = np.unique(np.asarray(y), return_inverse=True)
        self.model_ = KNNModel.fit(
            X,
            encoded.astype(np.int64),
            class_names=tuple(str(c) for c in self.classes_),
            index=self.index,
            metric=self.metric,
            storage=self.storage,
            defaults=query,
        )
        self.n_features_in_ = self.model_.dim
        return self

    def _classify(self, X: np.ndarray) -> Any:
        check_is_fitted(self, "model_")
        set_num_threads(self.n_threads)
        # Parameters changed after fit (set_params) apply: they override the fitted defaults.
        return self.model_.classify(np.asarray(X), self.query())

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted class of each row, in the label type given to :meth:`fit`."""
        predictions = self._classify(X).predictions
        if (predictions < 0).any():
            raise InvalidInputError("X", "rows that find at least one neighbour (raise nprobe)", "a row with none")
        return self.classes_[predictions]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Normalised votes (n, n_classes), columns in the order of ``classes_``."""
        return self._classify(X).probabilities

    def kneighbors(
        self, X: np.ndarray, n_neighbors: int | None = None, return_distance: bool = True
    ) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
        """Distances (true metric scale) and indices of the nearest training rows, as scikit-learn returns them."""
        check_is_fitted(self, "model_")
        model = self.model_
        query = model.resolve(self.query().replace(k=self.k if n_neighbors is None else n_neighbors))
        distances, ids = model.search(model.prepare(np.asarray(X)), query)
        return (distances, ids) if return_distance else ids

    def save(self, path: str | Path, *, name: str, dataset: DatasetInfo | None = None, overwrite: bool = False) -> None:
        """Write the fitted model as a knnserve bundle that ``knnserve serve`` can host."""
        check_is_fitted(self, "model_")
        self.model_.with_defaults(self.query()).save(path, name=name, dataset=dataset, overwrite=overwrite)
