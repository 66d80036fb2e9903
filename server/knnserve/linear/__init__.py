"""Linear classifier head: softmax / multiclass SVM losses, regularizers, SGD training, search, estimator."""

from knnserve.linear.estimator import LinearClassifier, tune_linear_classifier
from knnserve.linear.losses import linear_scores, log_softmax, softmax, softmax_loss, svm_loss
from knnserve.linear.model import LinearModel
from knnserve.linear.objective import Objective, loss_and_gradients
from knnserve.linear.regularizers import penalty
from knnserve.linear.schedule import Schedule
from knnserve.linear.search import HyperparameterSearch, SearchSpace, default_space, search_hyperparameters
from knnserve.linear.train import EpochRecord, TrainConfig, LinearFit, train_linear

__all__ = [
    "EpochRecord",
    "HyperparameterSearch",
    "LinearClassifier",
    "LinearFit",
    "LinearModel",
    "Objective",
    "Schedule",
    "SearchSpace",
    "TrainConfig",
    "default_space",
    "linear_scores",
    "log_softmax",
    "loss_and_gradients",
    "penalty",
    "search_hyperparameters",
    "softmax",
    "softmax_loss",
    "svm_loss",
    "train_linear",
    "tune_linear_classifier",
]
