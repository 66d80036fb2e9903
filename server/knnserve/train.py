"""Training pipeline: index a dataset's training split, evaluate on its test split, save a bundle."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from knnserve.bundle import DatasetInfo, KnnDefaults, Manifest
from knnserve.data.dataset import Dataset
from knnserve.errors import InvalidInputError
from knnserve.model import KNNModel
from knnserve.selection import DEFAULT_KS, CVResult, cross_validate_k


@dataclass(frozen=True)
class KnnConfig:
    """How to build and vote: index spec, metric, storage and voting defaults.

    ``k="auto"`` chooses k (and the weighting, unless ``weights`` is given) by ``cv_folds``-fold
    cross-validation of exact k-NN on the training split; ``weights=None`` means uniform otherwise.
    """

    index: str = "flat"
    metric: str = "l2"
    storage: str = "auto"
    k: int | str = 5
    weights: str | None = None
    cv_folds: int = 5
    cv_ks: tuple[int, ...] = DEFAULT_KS
    tie_break: str = "nearest"
    nprobe: int | None = None
    ef_search: int | None = None


@dataclass(frozen=True)
class TrainResult:
    """A trained model and what was measured while training it."""

    model: KNNModel
    metrics: dict[str, Any] = field(default_factory=dict)
    cv: CVResult | None = None


def dataset_info(dataset: Dataset) -> DatasetInfo:
    """Manifest record of the dataset a model was trained on."""
    return DatasetInfo(
        name=dataset.name,
        checksum=dataset.checksum or dataset.computed_checksum(),
        source=dataset.source,
        n_train=int(dataset.x_train.shape[0]),
        n_test=int(dataset.x_test.shape[0]),
    )


def accuracy(predictions: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of predictions equal to the truth."""
    return float(np.mean(predictions == truth))


def train_knn(dataset: Dataset, config: KnnConfig = KnnConfig(), *, progress: bool = False) -> TrainResult:
    """Index ``dataset.x_train`` and measure k-NN accuracy on ``dataset.x_test`` with the config's defaults."""
    k, weights, cv = _choose_k(dataset, config, progress=progress)
    started = time.perf_counter()
    model = KNNModel.fit(
        dataset.x_train,
        dataset.y_train,
        class_names=dataset.class_names,
        index=config.index,
        metric=config.metric,
        storage=config.storage,
        progress=progress,
    )
    built = time.perf_counter()
    defaults = KnnDefaults(
        k=k,
        weights=weights,  # type: ignore[arg-type]
        tie_break=config.tie_break,  # type: ignore[arg-type]
        nprobe=model.defaults.nprobe if config.nprobe is None else config.nprobe,
        ef_search=model.defaults.ef_search if config.ef_search is None else config.ef_search,
    )
    model = model.with_defaults(**defaults.model_dump())
    metrics: dict[str, Any] = {"build_seconds": round(built - started, 3)}
    if cv is not None:
        metrics["knn_cv"] = cv.as_dict()
    if dataset.x_test.shape[0]:
        evaluated = time.perf_counter()
        predictions = model.classify(dataset.x_test, progress=progress).predictions
        metrics.update(
            knn_test_accuracy=accuracy(predictions, dataset.y_test),
            knn_test_seconds=round(time.perf_counter() - evaluated, 3),
            knn_test_rows=int(dataset.x_test.shape[0]),
        )
    return TrainResult(model=model, metrics=metrics, cv=cv)


def _choose_k(dataset: Dataset, config: KnnConfig, *, progress: bool) -> tuple[int, str, CVResult | None]:
    if config.k != "auto":
        if isinstance(config.k, str) or config.k < 1:
            raise InvalidInputError("k", "an integer >= 1 or 'auto'", repr(config.k))
        return int(config.k), config.weights or "uniform", None
    cv = cross_validate_k(
        dataset.x_train,
        dataset.y_train,
        n_classes=dataset.n_classes,
        ks=config.cv_ks,
        weights=(config.weights,) if config.weights else ("uniform", "distance"),
        metric=config.metric,
        folds=config.cv_folds,
        tie_break=config.tie_break,
        progress=progress,
    )
    return cv.best.k, cv.best.weights, cv


def save_trained(result: TrainResult, dataset: Dataset, out: str | Path, *, name: str, overwrite: bool = False) -> Manifest:
    """Save a training result as a bundle folder and return the written manifest."""
    return result.model.save(out, name=name, dataset=dataset_info(dataset), metrics=result.metrics, overwrite=overwrite)
