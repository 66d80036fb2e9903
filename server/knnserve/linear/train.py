"""Minibatch SGD with momentum for the linear head: seeded shuffling, LR schedule, validation curve, early stopping."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from knnserve.errors import InvalidInputError
from knnserve.linear.losses import LOSSES, data_loss, linear_scores
from knnserve.linear.model import LinearModel, check_features
from knnserve.linear.objective import Objective, loss_and_gradients
from knnserve.linear.regularizers import REGULARIZERS, penalty
from knnserve.linear.schedule import Schedule


# Per-loss learning rates that worked on scaled, mean-centred Fashion-MNIST pixels (docs/linear.md).
DEFAULT_LEARNING_RATE: dict[str, float] = {"softmax": 0.2, "svm": 0.05}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; ``to_dict()`` is JSON-able and rebuilds it.

    ``patience`` is the number of epochs without a new best validation accuracy after which
    training stops (``None`` or no validation data: run all ``epochs``).
    """

    loss: str = "softmax"
    delta: float = 1.0
    reg: str = "l2"
    reg_strength: float = 1e-4
    l2_ratio: float = 1.0
    learning_rate: float = 0.2
    momentum: float = 0.9
    nesterov: bool = False
    schedule: str = "cosine"
    step_epochs: int = 5
    step_gamma: float = 0.1
    epochs: int = 12
    batch_size: int = 256
    patience: int | None = 4
    seed: int = 0
    init_scale: float = 1e-3

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise InvalidInputError("loss", f"one of {LOSSES}", repr(self.loss))
        if self.reg not in REGULARIZERS:
            raise InvalidInputError("reg", f"one of {REGULARIZERS}", repr(self.reg))
        if not self.reg_strength >= 0:
            raise InvalidInputError("reg_strength", "a number >= 0", self.reg_strength)
        if not 0 <= self.momentum < 1:
            raise InvalidInputError("momentum", "a number in [0, 1)", self.momentum)
        if self.batch_size < 1:
            raise InvalidInputError("batch_size", "an integer >= 1", self.batch_size)
        if self.patience is not None and self.patience < 1:
            raise InvalidInputError("patience", "None or an integer >= 1", self.patience)
        self.lr_schedule()  # validates schedule, learning_rate, epochs, step_epochs

    def objective(self) -> Objective:
        """The loss and penalty this config minimises."""
        return Objective(self.loss, self.delta, self.reg, self.reg_strength, self.l2_ratio)

    def lr_schedule(self) -> Schedule:
        """The learning-rate schedule over ``epochs``."""
        return Schedule(
            self.schedule, self.learning_rate, self.epochs, self.step_epochs, self.step_gamma
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of all fields."""
        return asdict(self)


@dataclass(frozen=True)
class EpochRecord:
    """One point of the training curve.

    ``train_loss``/``train_accuracy`` are averaged over the epoch's minibatches while the weights
    moved; ``penalty`` is lambda * R(W) at the epoch's end; ``val_loss`` is the data loss alone
    (comparable with ``train_loss``). Validation fields are None without validation data; loss
    and penalty are None once they overflow (a diverged run), which keeps the record valid JSON.
    """

    epoch: int
    learning_rate: float
    train_loss: float | None
    train_accuracy: float
    penalty: float | None
    val_loss: float | None
    val_accuracy: float | None
    seconds: float


@dataclass(frozen=True)
class LinearFit:
    """The kept model (best validation epoch, or the last without validation) and how training went."""

    model: LinearModel
    config: TrainConfig
    history: tuple[EpochRecord, ...]
    best_epoch: int
    best_val_accuracy: float | None
    stopped_early: bool
    diverged: bool
    seconds: float

    @property
    def epochs_run(self) -> int:
        """Number of epochs actually trained."""
        return len(self.history)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: config, the curve, best epoch, timing (weights go via ``model.to_arrays``)."""
        return {
            "config": self.config.to_dict(),
            "history": [asdict(record) for record in self.history],
            "best_epoch": self.best_epoch,
            "best_val_accuracy": self.best_val_accuracy,
            "epochs_run": self.epochs_run,
            "stopped_early": self.stopped_early,
            "diverged": self.diverged,
            "seconds": self.seconds,
        }


def _check_labels(y: np.ndarray, n: int, n_classes: int, field_name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise InvalidInputError(field_name, f"an integer array of shape ({n},)", f"{y.dtype} {y.shape}")
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise InvalidInputError(field_name, f"class indices in [0, {n_classes})", f"[{y.min()}, {y.max()}]")
    return y.astype(np.intp, copy=False)


def evaluate(
    weights: np.ndarray, bias: np.ndarray, x: np.ndarray, y: np.ndarray, config: TrainConfig
) -> tuple[float, float]:
    """Return (mean data loss, accuracy) of weights on (x, y), in chunks to bound memory."""
    total_loss = 0.0
    correct = 0
    chunk = 8192
    for start in range(0, x.shape[0], chunk):
        scores = linear_scores(x[start : start + chunk], weights, bias)
        target = y[start : start + chunk]
        loss, _ = data_loss(scores, target, config.loss, config.delta)
        total_loss += loss * target.shape[0]
        correct += int((scores.argmax(axis=1) == target).sum())
    n = max(x.shape[0], 1)
    return total_loss / n, correct / n


def train_linear(
    x_train: np.ndarray,
    y_train: np.ndarray,
    config: TrainConfig = TrainConfig(),
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    n_classes: int | None = None,
    verbose: bool = False,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    blas_threads: int | None = 1,
) -> LinearFit:
    """Train a linear softmax or SVM head by minibatch SGD (float32) and return the kept model.

    Parameters
    ----------
    x_train, y_train : (N, D) preprocessed features and (N,) class indices in ``[0, n_classes)``.
    config : hyper-parameters; its ``seed`` fixes the initial weights and every epoch's shuffle.
    x_val, y_val : a validation split carved from the training data (never the test set). With it,
        each epoch records validation loss/accuracy, training stops after ``patience`` epochs
        without a new best accuracy, and the best epoch's weights are returned.
    n_classes : C; defaults to ``max(y) + 1`` over train and validation labels.
    verbose : show a tqdm bar over epochs with loss and validation accuracy.
    on_epoch : called with each :class:`EpochRecord` as it is made.
    blas_threads : BLAS threads while training (None: leave as is). One is the default because the
        minibatch products are small: on a busy 2-core machine two OpenBLAS threads spinning against
        other processes made an epoch 5-20x slower than one thread.
    """
    # Divergence is detected and reported per epoch, so numpy's overflow warnings would only be noise.
    with threadpool_limits(limits=blas_threads, user_api="blas"), np.errstate(over="ignore", invalid="ignore"):
        return _train(x_train, y_train, config, x_val, y_val, n_classes, verbose, on_epoch)


def _train(
    x_train: np.ndarray,
    y_train: np.ndarray,
    config: TrainConfig,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    n_classes: int | None,
    verbose: bool,
    on_epoch: Callable[[EpochRecord], None] | None,
) -> LinearFit:
    started = time.perf_counter()
    x_train = np.asarray(x_train)
    if x_train.ndim != 2 or x_train.shape[0] == 0:
        raise InvalidInputError("x_train", "a non-empty 2-D array (N, D)", f"shape {x_train.shape}")
    n, dim = x_train.shape
    x = check_features(x_train, dim, "x_train")
    has_val = x_val is not None and y_val is not None and len(y_val) > 0
    if n_classes is None:
        n_classes = int(max(np.max(y_train), np.max(y_val) if has_val else -1)) + 1
    y = _check_labels(y_train, n, n_classes, "y_train")
    if has_val:
        xv = check_features(np.asarray(x_val), dim, "x_val")
        yv = _check_labels(y_val, xv.shape[0], n_classes, "y_val")

    objective = config.objective()
    schedule = config.lr_schedule()
    rng = np.random.default_rng(config.seed)
    weights = (config.init_scale * rng.standard_normal((n_classes, dim))).astype(np.float32)
    bias = np.zeros(n_classes, dtype=np.float32)
    vel_w = np.zeros_like(weights)
    vel_b = np.zeros_like(bias)
    mu = np.float32(config.momentum)

    best = (weights.copy(), bias.copy())
    best_epoch, best_acc = 0, -1.0
    history: list[EpochRecord] = []
    stopped_early = diverged = False
    bar = tqdm(range(1, config.epochs + 1), desc=f"linear {config.loss}", unit="epoch", disable=not verbose)
    for epoch in bar:
        epoch_started = time.perf_counter()
        order = rng.permutation(n)
        loss_sum = 0.0
        correct = 0
        epoch_rate = schedule.rate(epoch - 1)
        for start in range(0, n, config.batch_size):
            batch = order[start : start + config.batch_size]
            xb, yb = x[batch], y[batch]
            rate = schedule.rate(epoch - 1 + start / n)
            value = loss_and_gradients(weights, bias, xb, yb, objective)
            loss_sum += value.data * batch.shape[0]
            correct += int((value.scores.argmax(axis=1) == yb).sum())
            lr = np.float32(rate)
            if config.nesterov:
                # Nesterov in the "look-ahead folded into the update" form (Sutskever et al., 2013).
                prev_w, prev_b = vel_w.copy(), vel_b.copy()
                vel_w *= mu
                vel_w -= lr * value.grad_weights
                vel_b *= mu
                vel_b -= lr * value.grad_bias
                weights += (1 + mu) * vel_w - mu * prev_w
                bias += (1 + mu) * vel_b - mu * prev_b
            else:
                vel_w *= mu
                vel_w -= lr * value.grad_weights
                vel_b *= mu
                vel_b -= lr * value.grad_bias
                weights += vel_w
                bias += vel_b
        train_loss = loss_sum / n
        reg_value = penalty(weights, config.reg, config.reg_strength, config.l2_ratio)[0]
        if not (np.isfinite(train_loss) and np.isfinite(weights).all() and np.isfinite(bias).all()):
            diverged = True
        val_loss = val_acc = None
        if has_val and not diverged:
            val_loss, val_acc = evaluate(weights, bias, xv, yv, config)
        record = EpochRecord(
            epoch=epoch,
            learning_rate=float(epoch_rate),
            train_loss=float(train_loss) if np.isfinite(train_loss) else None,
            train_accuracy=correct / n,
            penalty=float(reg_value) if np.isfinite(reg_value) else None,
            val_loss=val_loss,
            val_accuracy=val_acc,
            seconds=time.perf_counter() - epoch_started,
        )
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if diverged:
            break
        bar.set_postfix(loss=f"{train_loss:.4f}", val_acc="-" if val_acc is None else f"{val_acc:.4f}")
        if val_acc is None:
            continue
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch
            best = (weights.copy(), bias.copy())
        elif config.patience is not None and epoch - best_epoch >= config.patience:
            stopped_early = True
            break
    bar.close()
    if has_val:
        weights, bias = best
    elif diverged:
        # Without validation there is no better epoch to fall back on; keep the initial weights.
        weights, bias = best
    else:
        best_epoch = len(history)
    model = LinearModel(weights=weights, bias=bias, loss=config.loss, delta=config.delta)
    return LinearFit(
        model=model,
        config=config,
        history=tuple(history),
        best_epoch=best_epoch,
        best_val_accuracy=best_acc if has_val and best_epoch > 0 else None,
        stopped_early=stopped_early,
        diverged=diverged,
        seconds=time.perf_counter() - started,
    )
