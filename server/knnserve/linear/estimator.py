"""scikit-learn estimator around preprocessing + the linear head, and a tuner that searches lr and lambda."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from knnserve.errors import BundleError, InvalidInputError
from knnserve.features.preprocess import PreprocessConfig, Preprocessor, fit_preprocessor
from knnserve.linear.model import LinearModel
from knnserve.linear.search import HyperparameterSearch, SearchSpace, default_space, search_hyperparameters
from knnserve.data.split import validation_split
from knnserve.linear.train import DEFAULT_LEARNING_RATE, TrainConfig, LinearFit, train_linear

ESTIMATOR_SCHEMA = 1


class LinearClassifier(ClassifierMixin, BaseEstimator):
    """Softmax or multiclass-SVM linear classifier on preprocessed pixels, trained by minibatch SGD.

    ``fit`` carves a seeded, stratified validation split of ``val_fraction`` from the training data
    (unless ``X_val``/``y_val`` are given), fits the preprocessing on the remaining training part
    only, trains with early stopping on validation accuracy and keeps the best epoch's weights.

    Parameters
    ----------
    loss : ``"softmax"`` (cross-entropy) or ``"svm"`` (multiclass hinge with margin ``delta``).
    reg, reg_strength, l2_ratio : penalty ``"l2"``, ``"l1"``, ``"elasticnet"`` or ``"none"``,
        its lambda, and beta of the elastic net ``beta * W^2 + |W|``. The bias is not penalised.
    learning_rate : SGD step size; None picks the per-loss default (softmax 0.2, svm 0.05).
    momentum, nesterov : heavy-ball momentum, optionally Nesterov's variant.
    schedule, step_epochs, step_gamma : ``"constant"``, ``"step"`` or ``"cosine"`` learning rate.
    epochs, batch_size, patience : at most ``epochs`` passes of ``batch_size`` minibatches;
        stop after ``patience`` epochs without a new best validation accuracy (None: never).
    val_fraction : fraction carved out for validation when no ``X_val`` is given (0: none, then
        the last epoch's weights are kept).
    seed : fixes the split, the initial weights and the shuffles.
    scale, center, standardize, pca_dim, l2_normalize : preprocessing, see ``PreprocessConfig``.
    verbose : tqdm progress over epochs (loss, validation accuracy).

    Attributes
    ----------
    classes_ : the sorted distinct labels. coef_ (C, D), intercept_ (C,) : the head, acting on
    preprocessed features (see :meth:`templates` for the pixel-space view). preprocessor_,
    model_, result_ : the fitted parts; history_ : the per-epoch curve as dicts.

    ``predict_proba`` of an SVM is a softmax over hinge scores: it ranks classes but is NOT calibrated.
    """

    def __init__(
        self,
        loss: str = "softmax",
        reg: str = "l2",
        reg_strength: float = 1e-4,
        l2_ratio: float = 1.0,
        delta: float = 1.0,
        learning_rate: float | None = None,
        momentum: float = 0.9,
        nesterov: bool = False,
        schedule: str = "cosine",
        step_epochs: int = 5,
        step_gamma: float = 0.1,
        epochs: int = 12,
        batch_size: int = 256,
        patience: int | None = 4,
        val_fraction: float = 0.1,
        seed: int = 0,
        scale: str | float = "auto",
        center: bool = True,
        standardize: bool = False,
        pca_dim: int | None = None,
        l2_normalize: bool = False,
        verbose: bool = False,
    ) -> None:
        self.loss = loss
        self.reg = reg
        self.reg_strength = reg_strength
        self.l2_ratio = l2_ratio
        self.delta = delta
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.schedule = schedule
        self.step_epochs = step_epochs
        self.step_gamma = step_gamma
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.val_fraction = val_fraction
        self.seed = seed
        self.scale = scale
        self.center = center
        self.standardize = standardize
        self.pca_dim = pca_dim
        self.l2_normalize = l2_normalize
        self.verbose = verbose

    # -- configuration -------------------------------------------------------------------------

    def train_config(self) -> TrainConfig:
        """The :class:`TrainConfig` these parameters describe."""
        if self.loss not in DEFAULT_LEARNING_RATE:
            raise InvalidInputError("loss", f"one of {tuple(DEFAULT_LEARNING_RATE)}", repr(self.loss))
        learning_rate = DEFAULT_LEARNING_RATE[self.loss] if self.learning_rate is None else self.learning_rate
        return TrainConfig(
            loss=self.loss,
            delta=float(self.delta),
            reg=self.reg,
            reg_strength=float(self.reg_strength),
            l2_ratio=float(self.l2_ratio),
            learning_rate=float(learning_rate),
            momentum=float(self.momentum),
            nesterov=bool(self.nesterov),
            schedule=self.schedule,
            step_epochs=int(self.step_epochs),
            step_gamma=float(self.step_gamma),
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            patience=None if self.patience is None else int(self.patience),
            seed=int(self.seed),
        )

    def preprocess_config(self) -> PreprocessConfig:
        """The :class:`PreprocessConfig` these parameters describe."""
        return PreprocessConfig(
            scale=self.scale,
            center=bool(self.center),
            standardize=bool(self.standardize),
            pca_dim=self.pca_dim,
            l2_normalize=bool(self.l2_normalize),
        )

    # -- fitting -------------------------------------------------------------------------------

    def _prepare(
        self, X: Any, y: Any, X_val: Any | None, y_val: Any | None
    ) -> tuple[Preprocessor, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray]:
        """Encode labels, split, fit preprocessing on the training part; return transformed arrays."""
        X = np.asarray(X)
        y = np.asarray(y)
        if X.ndim < 2 or y.shape != (X.shape[0],):
            raise InvalidInputError("X/y", "X of shape (N, ...) and y of shape (N,)", f"{X.shape} and {y.shape}")
        if (X_val is None) != (y_val is None):
            raise InvalidInputError("X_val/y_val", "both or neither", "only one of them")
        classes, y_idx = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise InvalidInputError("y", "at least 2 distinct classes", f"{classes.size}")
        if X_val is not None and y_val is not None:
            train_x, train_y = X, y_idx
            val_x = np.asarray(X_val)
            val_labels = np.asarray(y_val)
            pos = np.searchsorted(classes, val_labels)
            pos = np.clip(pos, 0, classes.size - 1)
            if not np.array_equal(classes[pos], val_labels):
                raise InvalidInputError("y_val", f"labels among the training classes {classes.tolist()}", "others")
            val_y: np.ndarray | None = pos.astype(np.int64)
        else:
            train_idx, val_idx = validation_split(y_idx, float(self.val_fraction), int(self.seed))
            train_x, train_y = X[train_idx], y_idx[train_idx]
            val_x, val_y = (X[val_idx], y_idx[val_idx]) if val_idx.size else (None, None)
        preprocessor = fit_preprocessor(train_x, self.preprocess_config())
        xt = preprocessor.transform(train_x)
        xv = preprocessor.transform(val_x) if val_x is not None else None
        return preprocessor, xt, train_y, xv, val_y, classes

    def _set_fitted(self, preprocessor: Preprocessor, result: LinearFit, classes: np.ndarray) -> None:
        self.classes_ = classes
        self.preprocessor_ = preprocessor
        self.result_ = result
        self.model_ = result.model
        self.n_features_in_ = preprocessor.input_dim
        self.history_ = result.to_dict()["history"]
        self.best_epoch_ = result.best_epoch
        self.coef_ = result.model.weights
        self.intercept_ = result.model.bias

    def fit(self, X: Any, y: Any, X_val: Any | None = None, y_val: Any | None = None) -> "LinearClassifier":
        """Fit on images or feature rows X (N, ...) and labels y (N,); see the class docstring."""
        config = self.train_config()
        preprocessor, xt, yt, xv, yv, classes = self._prepare(X, y, X_val, y_val)
        result = train_linear(xt, yt, config, xv, yv, n_classes=classes.size, verbose=bool(self.verbose))
        self._set_fitted(preprocessor, result, classes)
        return self

    # -- inference -----------------------------------------------------------------------------

    def decision_function(self, X: Any) -> np.ndarray:
        """Raw class scores (N, C) float32, columns in ``classes_`` order."""
        check_is_fitted(self, "model_")
        return self.model_.decision_function(self.preprocessor_.transform(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax over the scores (N, C); a probability model for softmax, NOT calibrated for svm."""
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(self.preprocessor_.transform(X))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels (N,), drawn from ``classes_``."""
        check_is_fitted(self, "model_")
        return self.classes_[self.model_.predict(self.preprocessor_.transform(X))]

    def templates(self) -> np.ndarray:
        """Weights mapped back to input space, shaped (C, *input_shape): the lecture's "templates" view.

        Scores equal ``x_flat @ templates.reshape(C, -1).T + b'`` for raw input x, because every
        preprocessing step except L2 normalisation is affine (raises InvalidInputError with it).
        """
        check_is_fitted(self, "model_")
        matrix, _ = self.preprocessor_.affine()
        pixel_weights = self.model_.weights.astype(np.float64) @ matrix
        return pixel_weights.astype(np.float32).reshape((self.model_.n_classes, *self.preprocessor_.input_shape))

    # -- persistence ---------------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays for ``np.savez`` (keys ``linear.*``, ``preprocess.*``, ``classes``); loadable without pickle."""
        check_is_fitted(self, "model_")
        classes = self.classes_
        if classes.dtype == object:
            if not all(isinstance(c, str) for c in classes):
                raise BundleError("classes: expected numbers or strings to store without pickle")
            classes = classes.astype(str)
        arrays = {"classes": classes}
        arrays.update({f"linear.{k}": v for k, v in self.model_.to_arrays().items()})
        arrays.update({f"preprocess.{k}": v for k, v in self.preprocessor_.to_arrays().items()})
        return arrays

    def metadata(self) -> dict[str, Any]:
        """JSON-able dict: parameters, model and preprocessing descriptions, training curve."""
        check_is_fitted(self, "model_")
        return {
            "schema": ESTIMATOR_SCHEMA,
            "params": self.get_params(),
            "model": self.model_.metadata(),
            "preprocess": self.preprocessor_.metadata(),
            # A head read back from a bundle has no result_ (its curve is kept as training_), so it saves again.
            "training": self.result_.to_dict() if hasattr(self, "result_") else getattr(self, "training_", {}),
        }

    @classmethod
    def from_arrays(cls, arrays: Any, metadata: dict[str, Any]) -> "LinearClassifier":
        """Rebuild a fitted estimator from :meth:`to_arrays` (dict or ``np.load``) and :meth:`metadata`.

        The training curve is kept in ``history_``; ``result_`` is not restored.
        """
        if metadata.get("schema") != ESTIMATOR_SCHEMA:
            raise BundleError(f"linear classifier schema: expected {ESTIMATOR_SCHEMA}, got {metadata.get('schema')!r}")
        keys = list(arrays.keys())
        model = LinearModel.from_arrays(
            {k[len("linear."):]: arrays[k] for k in keys if k.startswith("linear.")}, metadata["model"]
        )
        preprocessor = Preprocessor.from_arrays(
            {k[len("preprocess."):]: arrays[k] for k in keys if k.startswith("preprocess.")}, metadata["preprocess"]
        )
        if model.n_features != preprocessor.output_dim:
            raise BundleError(
                f"linear head expects {model.n_features} features, preprocessing gives {preprocessor.output_dim}"
            )
        estimator = cls(**metadata["params"])
        estimator.classes_ = np.asarray(arrays["classes"])
        if estimator.classes_.shape != (model.n_classes,):
            raise BundleError(f"classes: expected {model.n_classes}, got shape {estimator.classes_.shape}")
        estimator.preprocessor_ = preprocessor
        estimator.model_ = model
        estimator.n_features_in_ = preprocessor.input_dim
        training = metadata.get("training", {})
        estimator.training_ = dict(training)
        estimator.history_ = list(training.get("history", []))
        estimator.best_epoch_ = int(training.get("best_epoch", 0))
        estimator.coef_ = model.weights
        estimator.intercept_ = model.bias
        return estimator


def tune_linear_classifier(
    X: Any,
    y: Any,
    space: SearchSpace | None = None,
    X_val: Any | None = None,
    y_val: Any | None = None,
    refit: bool = False,
    **params: Any,
) -> tuple[LinearClassifier, HyperparameterSearch]:
    """Search learning rate and lambda on the validation split, return the fitted winner and the table.

    ``params`` are :class:`LinearClassifier` parameters (their ``learning_rate``/``reg_strength``
    are replaced by each candidate). The split and preprocessing are made once and shared by all
    candidates; the returned estimator holds the winner's weights and its parameters carry the
    chosen values, so ``sklearn.base.clone(est).fit(X, y)`` reproduces it.

    ``refit=True`` (GridSearchCV's habit): once the values are chosen, train again on **all** of X
    (the validation rows included, ``val_fraction=0``) with them, for the whole ``epochs`` budget
    and no early stopping (no rows are left to stop on). Only with the validation split carved from X.
    """
    if refit and X_val is not None:
        raise InvalidInputError("refit", "a validation split carved from X (X_val not given)", "X_val given")
    estimator = LinearClassifier(**params)
    space = space or default_space(estimator.loss)
    preprocessor, xt, yt, xv, yv, classes = estimator._prepare(X, y, X_val, y_val)
    if xv is None or yv is None:
        raise InvalidInputError("val_fraction", "> 0 (or X_val/y_val given) for a search", estimator.val_fraction)
    result = search_hyperparameters(
        xt, yt, xv, yv, estimator.train_config(), space, n_classes=classes.size, verbose=bool(estimator.verbose)
    )
    estimator.set_params(**result.best_params)
    if refit:
        estimator.set_params(val_fraction=0.0, patience=None).fit(X, y)
        return estimator, result
    estimator._set_fitted(preprocessor, result.best, classes)
    return estimator, result
