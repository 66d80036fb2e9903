"""Training pipeline: model selection on the training split, index it, fit the linear head, test, save.

With learned features (``FeaturesConfig.features`` ``cnn`` or ``onnx:PATH``) the pipeline first makes
the extractor and embeds every image with it (``features/learned.py``); the k-NN configuration and
the linear head are then chosen on the embeddings of the validation rows the network never trained
on, and the index and the head are fitted on embeddings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from knnserve.bundle import DatasetInfo, Manifest
from knnserve.data.dataset import Dataset
from knnserve.errors import InvalidInputError
from knnserve.features.knn_spec import AUTO_CANDIDATES, EMBEDDING_AUTO_CANDIDATES, parse_knn_preprocess
from knnserve.features.learned import LearnedFeatures, check_features_available, learn_features, parse_features
from knnserve.index import resolve_spec
from knnserve.model import KNNModel
from knnserve.selection import DEFAULT_KS, CVResult, cross_validate_k
from knnserve.training.config import ARCHITECTURES, CnnConfig
from knnserve_client.wire.query import KnnQuery

LINEAR_LOSSES: tuple[str, ...] = ("softmax", "svm", "none")


@dataclass(frozen=True)
class KnnConfig:
    """How to build the index and what the bundle's default query is.

    ``defaults`` is stored as the bundle's default query; its unset fields get the model's
    defaults (k=5, uniform, nearest, the index's own search effort). ``choose_k`` (``--k auto``)
    chooses k, and the weighting unless ``defaults.weights`` is set, and ``preprocess="auto"``
    chooses between ``AUTO_CANDIDATES``, both by ``cv_folds``-fold cross-validation of exact k-NN
    on the training split.
    """

    index: str = "flat"
    metric: str = "l2"
    storage: str = "auto"
    preprocess: str = "raw"
    defaults: KnnQuery = KnnQuery()
    choose_k: bool = False
    cv_folds: int = 5
    cv_ks: tuple[int, ...] = DEFAULT_KS


@dataclass(frozen=True)
class LinearConfig:
    """The linear head: its loss (``none`` for no head) and the seed of its split and search."""

    loss: str = "softmax"
    seed: int = 0
    val_fraction: float = 0.1


@dataclass(frozen=True)
class FeaturesConfig:
    """What the heads work on: ``pixels``, ``cnn`` / ``cnn:ARCH`` (trained here, see ``cnn``) or ``onnx:PATH``.

    ``seed`` fixes the validation split and the network's training; ``extractor_threads`` is
    onnxruntime's thread count while embedding the dataset (None: one per core).
    """

    features: str = "pixels"
    cnn: CnnConfig = CnnConfig()
    seed: int = 0
    extractor_threads: int | None = None


@dataclass(frozen=True)
class TrainedModel:
    """A trained model and what was measured while training it."""

    model: KNNModel
    metrics: dict[str, Any] = field(default_factory=dict)
    cv: CVResult | None = None
    network: Any = None  # --features cnn: the trained torch network (never saved; the bundle holds its ONNX export)


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


def train_knn(dataset: Dataset, config: KnnConfig = KnnConfig(), *, progress: bool = False) -> TrainedModel:
    """Choose settings on the training split, index it, and measure k-NN accuracy on the test split."""
    # Refuse an impossible index/metric pair before minutes of cross-validation, not after.
    resolve_spec(config.index, n=len(dataset.y_train), d=int(np.prod(dataset.image_shape)), metric=config.metric, storage=config.storage)
    chosen, preprocess, cv = _select(dataset, config, progress=progress)
    started = time.perf_counter()
    model = KNNModel.fit(
        dataset.x_train,
        dataset.y_train,
        class_names=dataset.class_names,
        index=config.index,
        metric=config.metric,
        storage=config.storage,
        preprocess=parse_knn_preprocess(preprocess),
        defaults=chosen,
        progress=progress,
    )
    built = time.perf_counter()
    model.resolve()  # a default the index cannot take (e.g. nprobe above nlist) fails here, not at serving time
    metrics: dict[str, Any] = {"knn_preprocess": preprocess, "build_seconds": round(built - started, 3)}
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
    return TrainedModel(model=model, metrics=metrics, cv=cv)


def _select(dataset: Dataset, config: KnnConfig, *, progress: bool) -> tuple[KnnQuery, str, CVResult | None]:
    """The default query (k and weights chosen by CV when asked) and the preprocessing spec."""
    defaults = config.defaults
    auto_preprocess = config.preprocess == "auto"
    if not auto_preprocess:
        parse_knn_preprocess(config.preprocess)  # refuse a bad spec before any work
    if config.choose_k and defaults.k is not None:
        raise InvalidInputError("k", "unset when it is chosen by cross-validation (--k auto)", defaults.k)
    if not (config.choose_k or auto_preprocess):
        return defaults, config.preprocess, None
    if defaults.weights:
        weights: tuple[str, ...] = (defaults.weights,)
    else:
        weights = ("uniform", "distance") if config.choose_k else ("uniform",)
    dim = int(np.prod(dataset.image_shape))
    candidates = tuple(c for c in AUTO_CANDIDATES if _fits(c, dim)) if auto_preprocess else (config.preprocess,)
    cv = cross_validate_k(
        dataset.x_train,
        dataset.y_train,
        n_classes=dataset.n_classes,
        ks=config.cv_ks if config.choose_k else (defaults.k or 5,),
        weights=weights,
        preprocess=candidates,
        metric=config.metric,
        folds=config.cv_folds,
        tie_break=defaults.tie_break or "nearest",
        progress=progress,
    )
    return defaults.replace(k=cv.best.k, weights=cv.best.weights), cv.best.preprocess, cv


def _fits(spec: str, dim: int) -> bool:
    """Whether a preprocessing candidate applies to inputs of ``dim`` features (PCA must reduce)."""
    config = parse_knn_preprocess(spec)
    return config is None or config.pca_dim is None or config.pca_dim < dim


def train_linear_head(dataset: Dataset, config: LinearConfig, *, progress: bool = False) -> tuple[Any, dict[str, Any]]:
    """Fit the linear head, choosing learning rate and λ on a validation split carved from the training split.

    Returns the fitted ``LinearClassifier`` and metrics: test accuracy, seconds, the search table.
    """
    from knnserve.linear import tune_linear_classifier

    if config.loss not in LINEAR_LOSSES[:-1]:
        raise InvalidInputError("linear", "softmax or svm", repr(config.loss))
    started = time.perf_counter()
    head, search = tune_linear_classifier(
        dataset.x_train,
        dataset.y_train,
        loss=config.loss,
        seed=config.seed,
        val_fraction=config.val_fraction,
        verbose=progress,
    )
    metrics: dict[str, Any] = {
        "linear_loss": config.loss,
        "linear_seconds": round(time.perf_counter() - started, 3),
        "linear_search": search.to_dict(),
    }
    if dataset.x_test.shape[0]:
        metrics["linear_test_accuracy"] = float(head.score(dataset.x_test, dataset.y_test))
    return head, metrics


def train_model(
    dataset: Dataset,
    knn: KnnConfig = KnnConfig(),
    linear: LinearConfig = LinearConfig(),
    *,
    features: FeaturesConfig = FeaturesConfig(),
    progress: bool = False,
) -> TrainedModel:
    """The whole pipeline behind ``knnserve train``: the k-NN index and, unless ``linear.loss`` is none, the head."""
    spec = parse_features(features.features)
    if spec.kind != "pixels":
        return train_on_features(dataset, knn, linear, features, progress=progress)
    result = train_knn(dataset, knn, progress=progress)
    if linear.loss == "none":
        return result
    head, metrics = train_linear_head(dataset, linear, progress=progress)
    return TrainedModel(model=result.model.with_linear(head), metrics={**result.metrics, **metrics}, cv=result.cv)


def train_on_features(
    dataset: Dataset,
    knn: KnnConfig,
    linear: LinearConfig,
    features: FeaturesConfig,
    *,
    progress: bool = False,
) -> TrainedModel:
    """The pipeline on learned features: extractor, embeddings, k-NN chosen on validation, index, head, test."""
    spec = parse_features(features.features)
    check_features_available(spec)  # the extra or the file missing: fail before any work
    if spec.kind == "cnn":  # an impossible index/metric pair fails before minutes of training
        resolve_spec(knn.index, n=len(dataset.y_train), d=ARCHITECTURES[spec.arch].embedding, metric=knn.metric, storage=knn.storage)
    if knn.preprocess != "auto":
        parse_knn_preprocess(knn.preprocess)
    if knn.choose_k and knn.defaults.k is not None:
        raise InvalidInputError("k", "unset when it is chosen on validation (--k auto)", knn.defaults.k)
    learned = learn_features(dataset, spec, CnnConfig(**{**features.cnn.to_dict(), "seed": features.seed}), seed=features.seed,
                             extractor_threads=features.extractor_threads, progress=progress)
    chosen, preprocess, cv = _select_on_validation(learned, dataset, knn, progress=progress)
    started = time.perf_counter()
    model = KNNModel.fit(
        dataset.x_train, dataset.y_train, class_names=dataset.class_names, index=knn.index, metric=knn.metric,
        storage=knn.storage, preprocess=parse_knn_preprocess(preprocess), defaults=chosen, progress=progress,
        extractor=learned.extractor, features=learned.train,
    )
    metrics: dict[str, Any] = {**learned.metrics, "knn_preprocess": preprocess,
                               "build_seconds": round(time.perf_counter() - started, 3)}
    query = model.resolve()
    if cv is not None:
        metrics["knn_validation"] = cv.as_dict()
    if dataset.x_test.shape[0]:
        evaluated = time.perf_counter()
        vectors = learned.test if model.preprocessor is None else model.preprocessor.transform(learned.test)
        distances, ids = model.search_vectors(vectors, query)
        predictions = model.vote(distances, ids, query).predictions
        metrics.update(knn_test_accuracy=accuracy(predictions, dataset.y_test),
                       knn_test_seconds=round(time.perf_counter() - evaluated, 3), knn_test_rows=int(dataset.x_test.shape[0]))
    if linear.loss != "none":
        head, head_metrics = _linear_on_features(learned, dataset, linear, progress=progress)
        model = model.with_linear(head)
        metrics.update(head_metrics)
    return TrainedModel(model=model, metrics=metrics, cv=cv, network=learned.network)


def _select_on_validation(learned: LearnedFeatures, dataset: Dataset, config: KnnConfig, *,
                          progress: bool) -> tuple[KnnQuery, str, CVResult | None]:
    """k, weighting and preprocessing (raw or cosine: the metric) chosen on the validation rows' embeddings."""
    defaults = config.defaults
    auto_preprocess = config.preprocess == "auto"
    if not (config.choose_k or auto_preprocess):
        return defaults, config.preprocess, None
    weights = (defaults.weights,) if defaults.weights else (("uniform", "distance") if config.choose_k else ("uniform",))
    fit = len(learned.fit_rows)
    ks = (tuple(k for k in config.cv_ks if k <= fit) or (1,)) if config.choose_k else (defaults.k or 5,)
    cv = cross_validate_k(
        learned.train, dataset.y_train, n_classes=dataset.n_classes, ks=ks, weights=weights,
        preprocess=EMBEDDING_AUTO_CANDIDATES if auto_preprocess else (config.preprocess,), metric=config.metric,
        tie_break=defaults.tie_break or "nearest", progress=progress, holdout=(learned.fit_rows, learned.val_rows),
    )
    return defaults.replace(k=cv.best.k, weights=cv.best.weights), cv.best.preprocess, cv


def _linear_on_features(learned: LearnedFeatures, dataset: Dataset, config: LinearConfig, *,
                        progress: bool) -> tuple[Any, dict[str, Any]]:
    """The linear head on the embeddings: trained on the fit rows, its learning rate and λ chosen on the validation rows."""
    from knnserve.linear import tune_linear_classifier

    if config.loss not in LINEAR_LOSSES[:-1]:
        raise InvalidInputError("linear", "softmax or svm", repr(config.loss))
    started = time.perf_counter()
    y = dataset.y_train
    head, search = tune_linear_classifier(
        learned.train[learned.fit_rows], y[learned.fit_rows], X_val=learned.train[learned.val_rows],
        y_val=y[learned.val_rows], loss=config.loss, seed=config.seed, verbose=progress,
    )
    metrics: dict[str, Any] = {"linear_loss": config.loss, "linear_seconds": round(time.perf_counter() - started, 3),
                               "linear_search": search.to_dict()}
    if dataset.x_test.shape[0]:
        metrics["linear_test_accuracy"] = float(head.score(learned.test, dataset.y_test))
    return head, metrics


def save_trained(result: TrainedModel, dataset: Dataset, out: str | Path, *, name: str, overwrite: bool = False) -> Manifest:
    """Save a training result as a bundle folder and return the written manifest."""
    return result.model.save(out, name=name, dataset=dataset_info(dataset), metrics=result.metrics, overwrite=overwrite)
