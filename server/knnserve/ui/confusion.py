"""The confusion matrix of a model's k-NN head on the test split, classified through the public client.

Bundles store accuracies, not confusion matrices, so the page asks the server: the test rows (all of
them, or the first ``max_rows``) in one ``Client.classify`` call (the client splits it under the
server's limits) with the model's default query. The worst pairs (true class, predicted class) link
to their test rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from knnserve_client import Client
from knnserve_client.wire.model_info import ModelInfo

WORST_PAIRS = 6


@dataclass(frozen=True)
class Confusion:
    """Counts (C, C) of true class (rows) by predicted class (columns), and each test row's prediction."""

    counts: np.ndarray
    rows: np.ndarray
    predictions: np.ndarray
    truth: np.ndarray
    seconds: float

    @property
    def accuracy(self) -> float:
        """Fraction of rows on the diagonal."""
        total = int(self.counts.sum())
        return float(np.trace(self.counts)) / total if total else 0.0

    def worst_pairs(self, n: int = WORST_PAIRS) -> list[tuple[int, int, int]]:
        """The ``n`` largest off-diagonal cells as (true, predicted, count), largest first."""
        off = self.counts.copy()
        np.fill_diagonal(off, 0)
        order = np.argsort(-off, axis=None, kind="stable")[:n]
        return [(int(t), int(p), int(off[t, p])) for t, p in zip(*np.unravel_index(order, off.shape)) if off[t, p] > 0]

    def examples(self, true: int, predicted: int, limit: int = 24) -> list[int]:
        """Test rows of class ``true`` the model predicted as ``predicted``."""
        return [int(r) for r in self.rows[(self.truth == true) & (self.predictions == predicted)][:limit]]

    def to_json(self, class_names: tuple[str, ...]) -> dict[str, Any]:
        """As the page's JSON."""
        return {
            "counts": self.counts.tolist(),
            "class_names": list(class_names),
            "rows": int(self.rows.size),
            "accuracy": self.accuracy,
            "seconds": round(self.seconds, 3),
            "worst": [{"true": t, "predicted": p, "count": c, "true_name": class_names[t], "predicted_name": class_names[p]}
                      for t, p, c in self.worst_pairs()],
        }


def confusion_matrix(truth: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (C, C) of (true, predicted); rows predicted -1 (no neighbour) are left out."""
    keep = predictions >= 0
    flat = truth[keep].astype(np.int64) * n_classes + predictions[keep].astype(np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def classify_test_split(client: Client, info: ModelInfo, x_test: np.ndarray, y_test: np.ndarray, *,
                        max_rows: int | None = None) -> Confusion:
    """Classify the test rows (the first ``max_rows``) with the model's k-NN head and count (true, predicted)."""
    rows = np.arange(x_test.shape[0] if max_rows is None else min(max_rows, x_test.shape[0]))
    started = time.perf_counter()
    result = client.classify(info.name, x_test[rows], version=info.version, heads=["knn"], top_n=1)
    seconds = time.perf_counter() - started
    predictions = np.asarray(result.predictions, dtype=np.int64)
    truth = np.asarray(y_test[rows], dtype=np.int64)
    return Confusion(counts=confusion_matrix(truth, predictions, len(info.class_names)), rows=rows,
                     predictions=predictions, truth=truth, seconds=seconds)


__all__ = ["WORST_PAIRS", "Confusion", "classify_test_split", "confusion_matrix"]
