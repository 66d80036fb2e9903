"""Choosing k, the vote weighting and the preprocessing by n-fold cross-validation on the training set only.

Each fold is searched once per preprocessing candidate, exactly, at the largest candidate k; every
(k, weights) candidate is then a vote over a prefix of those neighbours, so the cost is one search
per fold and preprocessing whatever the size of the (k, weights) grid. Preprocessing (PCA) is fitted
on each training fold alone, so the held-out fold never leaks into it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold
from tqdm.auto import tqdm

from knnserve.errors import InvalidInputError
from knnserve.features.knn_spec import knn_preprocess_name, parse_knn_preprocess
from knnserve.model import KNNModel
from knnserve.vote import neighbor_labels, vote
from knnserve_client.wire.query import WEIGHTS, KnnQuery

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 7, 9, 11, 15, 21)


@dataclass(frozen=True)
class Candidate:
    """Cross-validated accuracy of one (k, weights, preprocess) setting: per fold, mean and standard deviation."""

    k: int
    weights: str
    fold_accuracies: tuple[float, ...]
    preprocess: str = "raw"

    @property
    def mean(self) -> float:
        """Mean accuracy over folds."""
        return float(np.mean(self.fold_accuracies))

    @property
    def std(self) -> float:
        """Standard deviation of the accuracy over folds."""
        return float(np.std(self.fold_accuracies))

    def as_dict(self) -> dict[str, Any]:
        """JSON-able record for the manifest."""
        return {
            "k": self.k,
            "weights": self.weights,
            "preprocess": self.preprocess,
            "mean": self.mean,
            "std": self.std,
            "folds": list(self.fold_accuracies),
        }


@dataclass(frozen=True)
class CVResult:
    """All candidates and the chosen one (highest mean; ties go to the smaller k, then uniform, then raw)."""

    candidates: tuple[Candidate, ...]
    best: Candidate
    folds: int
    metric: str
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary for the manifest."""
        return {
            "folds": self.folds,
            "metric": self.metric,
            "seconds": round(self.seconds, 3),
            "best": self.best.as_dict(),
            "candidates": [c.as_dict() for c in self.candidates],
            **self.extra,
        }


def cross_validate_k(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_classes: int | None = None,
    ks: tuple[int, ...] = DEFAULT_KS,
    weights: tuple[str, ...] = ("uniform", "distance"),
    preprocess: tuple[str, ...] = ("raw",),
    metric: str = "l2",
    folds: int = 5,
    tie_break: str = "nearest",
    seed: int = 0,
    progress: bool = False,
    holdout: tuple[np.ndarray, np.ndarray] | None = None,
) -> CVResult:
    """Stratified n-fold CV of exact k-NN over ``ks`` × ``weights`` × ``preprocess``.

    Parameters
    ----------
    x, y : training vectors (N, ...) and integer labels; the test split must not be passed here.
    ks : candidate neighbour counts; each must be below the size of a training fold.
    weights : candidate weightings (``uniform``, ``distance``).
    preprocess : candidate k-NN preprocessing specs (``raw``, ``cosine``, ``pca:D``, ``pca:D+cosine``).
    folds : number of folds (default 5), stratified and shuffled with ``seed``.
    holdout : (fit rows, validation rows) to score on instead of folds: one split, ``folds`` ignored.
        Learned features use it: the network was trained on the fit rows only, so their embeddings
        are not the same kind of sample as unseen rows', and only the validation rows tell.
    """
    if holdout is None and folds < 2:
        raise InvalidInputError("folds", "an integer >= 2", folds)
    if not ks or min(ks) < 1:
        raise InvalidInputError("ks", "a non-empty list of integers >= 1", ks)
    for w in weights:
        if w not in WEIGHTS:
            raise InvalidInputError("weights", f"one of {', '.join(WEIGHTS)}", repr(w))
    configs = {knn_preprocess_name(parse_knn_preprocess(p)): parse_knn_preprocess(p) for p in preprocess}
    if not configs:
        raise InvalidInputError("preprocess", "at least one candidate", "none")
    y = np.asarray(y)
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    k_max = max(ks)
    fold_size = len(holdout[0]) if holdout is not None else len(y) - len(y) // folds - 1
    if k_max > fold_size:
        raise InvalidInputError("ks", f"values up to {fold_size} (rows in a training fold)", k_max)
    started = time.perf_counter()
    scores: dict[tuple[str, int, str], list[float]] = {
        (p, k, w): [] for p in configs for k in sorted(ks) for w in weights
    }
    if holdout is not None:
        splits = [(np.asarray(holdout[0]), np.asarray(holdout[1]))]
        folds = 1
    else:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = list(splitter.split(np.zeros(len(y)), y))
    names = tuple(map(str, range(n_classes)))
    with tqdm(total=folds * len(configs), desc="cross-validate", disable=not progress, leave=False) as bar:
        for train_rows, held_rows in splits:
            truth = y[held_rows]
            for name, config in configs.items():
                model = KNNModel.fit(x[train_rows], y[train_rows], class_names=names, metric=metric, preprocess=config)
                distances, ids = model.search(model.prepare(x[held_rows]), model.resolve(KnnQuery(k=k_max)))
                labels = neighbor_labels(model.labels, ids)
                for p, k, w in scores:
                    if p == name:
                        predicted = vote(labels[:, :k], distances[:, :k], n_classes, weights=w, tie_break=tie_break).predictions
                        scores[(p, k, w)].append(float(np.mean(predicted == truth)))
                bar.update(1)
    candidates = tuple(Candidate(k, w, tuple(acc), p) for (p, k, w), acc in scores.items())
    best = max(candidates, key=lambda c: (round(c.mean, 12), -c.k, c.weights == "uniform", c.preprocess == "raw"))
    return CVResult(candidates=candidates, best=best, folds=folds, metric=metric, seconds=time.perf_counter() - started)
