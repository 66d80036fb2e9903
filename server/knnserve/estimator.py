"""KNNClassifier: a scikit-learn-style estimator over the same FAISS engine the server uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from knnserve.bundle import DatasetInfo, KnnDefaults
from knnserve.errors import InvalidInputError
from knnserve.index import set_num_threads
from knnserve.model import KNNModel


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

    def fit(self, X: np.ndarray, y: np.ndarray) -> KNNClassifier:
        """Index the training vectors ``X`` (N, ...) with labels ``y`` of any sortable type."""
        set_num_threads(self.n_threads)
        X = np.asarray(X)
        self.classes_, encoded = np.unique(np.asarray(y), return_inverse=True)
        model = KNNModel.fit(
            X,
            encoded.astype(np.int64),
            class_names=tuple(str(c) for c in self.classes_),
            index=self.index,
            metric=self.metric,
            storage=self.storage,
        )
        self.model_ = model.with_defaults(**self._defaults(model.defaults))
        self.n_features_in_ = model.dim
        return self

    def _defaults(self, built: KnnDefaults) -> dict[str, Any]:
        return {
            "k": self.k,
            "weights": self.weights,
            "tie_break": self.tie_break,
            "nprobe": built.nprobe if self.nprobe is None else self.nprobe,
            "ef_search": built.ef_search if self.ef_search is None else self.ef_search,
        }

    def _classify(self, X: np.ndarray) -> Any:
        check_is_fitted(self, "model_")
        set_num_threads(self.n_threads)
        model = self.model_.with_defaults(**self._defaults(self.model_.defaults))
        return model.classify(np.asarray(X))

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
        distances, ids = model.search(
            model.prepare(np.asarray(X)),
            self.k if n_neighbors is None else n_neighbors,
            model.search_params(self.nprobe, self.ef_search),
        )
        return (distances, ids) if return_distance else ids

    def save(self, path: str | Path, *, name: str, dataset: DatasetInfo | None = None, overwrite: bool = False) -> None:
        """Write the fitted model as a knnserve bundle that ``knnserve serve`` can host."""
        check_is_fitted(self, "model_")
        self.model_.with_defaults(**self._defaults(self.model_.defaults)).save(
            path, name=name, dataset=dataset, overwrite=overwrite
        )
