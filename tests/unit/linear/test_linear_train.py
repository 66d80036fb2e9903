"""SGD training: loss goes down, separable data gets separated, early stopping keeps the best weights."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from knnserve.errors import InvalidInputError
from knnserve.linear.objective import loss_and_gradients
from knnserve.linear.train import TrainConfig, train_linear


def _blobs(
    n: int, seed: int, spread: float = 1.0, classes: int = 3, dim: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((classes, dim)) * 3
    y = rng.integers(0, classes, n)
    x = centres[y] + spread * rng.standard_normal((n, dim))
    return x.astype(np.float32), y


def _separable(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes split by hyperplanes with a clear gap (labels from a fixed linear rule)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 2))
    true_w = np.array([[1.0, 0.0], [-0.5, 0.87], [-0.5, -0.87]])
    scores = x @ true_w.T
    top2 = np.sort(scores, axis=1)[:, -2:]
    keep = top2[:, 1] - top2[:, 0] > 0.2
    return x[keep].astype(np.float32), scores[keep].argmax(axis=1)


@pytest.mark.parametrize("loss", ["softmax", "svm"])
@pytest.mark.parametrize("nesterov", [False, True])
def test_training_reduces_the_objective(loss: str, nesterov: bool) -> None:
    x, y = _blobs(300, 0, spread=2.0)
    config = TrainConfig(loss=loss, learning_rate=0.05, epochs=10, batch_size=32, patience=None, nesterov=nesterov)
    result = train_linear(x, y, config)
    init = TrainConfig(loss=loss).objective()
    rng = np.random.default_rng(config.seed)
    w0 = (config.init_scale * rng.standard_normal((3, 6))).astype(np.float32)
    before = loss_and_gradients(w0, np.zeros(3, np.float32), x, y, init).total
    after = loss_and_gradients(result.model.weights, result.model.bias, x, y, init).total
    assert after < 0.6 * before
    losses = [record.train_loss for record in result.history]
    assert losses[-1] < losses[0]
    assert result.epochs_run == 10 and result.best_epoch == 10 and result.best_val_accuracy is None


@pytest.mark.parametrize("loss", ["softmax", "svm"])
@pytest.mark.parametrize("schedule", ["constant", "step", "cosine"])
def test_separates_a_linearly_separable_set(loss: str, schedule: str) -> None:
    x, y = _separable()
    config = TrainConfig(
        loss=loss, reg="none", learning_rate=0.5, schedule=schedule, step_epochs=20, epochs=60, batch_size=16, patience=None
    )
    result = train_linear(x, y, config)
    assert (result.model.predict(x) == y).all()


def test_same_seed_same_weights_other_seed_other_weights() -> None:
    x, y = _blobs(200, 1)
    config = TrainConfig(epochs=3, batch_size=16)
    first = train_linear(x, y, config)
    again = train_linear(x, y, config)
    other = train_linear(x, y, replace(config, seed=1))
    np.testing.assert_array_equal(first.model.weights, again.model.weights)
    assert not np.array_equal(first.model.weights, other.model.weights)


def _noisy_problem() -> tuple[np.ndarray, ...]:
    x, y = _blobs(400, 2, spread=4.0)
    xv, yv = _blobs(200, 3, spread=4.0)
    return x, y, xv, yv


def test_early_stopping_keeps_the_best_epoch_weights() -> None:
    x, y, xv, yv = _noisy_problem()
    config = TrainConfig(
        learning_rate=0.5, schedule="constant", momentum=0.9, epochs=60, batch_size=8, patience=3, reg="none"
    )
    result = train_linear(x, y, config, xv, yv)
    assert result.stopped_early
    assert result.epochs_run == result.best_epoch + config.patience < config.epochs
    val_accs = [record.val_accuracy for record in result.history]
    assert result.best_val_accuracy == max(val_accs) == val_accs[result.best_epoch - 1]
    assert (result.model.predict(xv) == yv).mean() == result.best_val_accuracy
    # A constant schedule makes the first best_epoch epochs identical to a run that stops there.
    short = train_linear(x, y, replace(config, epochs=result.best_epoch, patience=None))
    np.testing.assert_array_equal(result.model.weights, short.model.weights)
    np.testing.assert_array_equal(result.model.bias, short.model.bias)
    # The last epoch's weights differ: restoring the best one actually did something.
    last = train_linear(x, y, replace(config, epochs=result.epochs_run, patience=None))
    assert not np.array_equal(result.model.weights, last.model.weights)


def test_history_is_json_able_and_complete() -> None:
    x, y, xv, yv = _noisy_problem()
    seen = []
    result = train_linear(x, y, TrainConfig(epochs=4, patience=None), xv, yv, on_epoch=seen.append)
    record = json.loads(json.dumps(result.to_dict()))
    assert [h["epoch"] for h in record["history"]] == [1, 2, 3, 4]
    assert len(seen) == 4
    for row in record["history"]:
        assert 0 <= row["val_accuracy"] <= 1 and row["val_loss"] > 0 and row["train_loss"] > 0
        assert row["penalty"] >= 0 and row["learning_rate"] > 0 and row["seconds"] >= 0
    assert record["config"] == TrainConfig(epochs=4, patience=None).to_dict()


def test_divergence_is_reported_not_raised() -> None:
    x, y, xv, yv = _noisy_problem()
    # lr * 2 * lambda = 200: the L2 step multiplies W by about -199 each minibatch, overflowing float32.
    config = TrainConfig(learning_rate=1.0, reg_strength=100.0, momentum=0.0, epochs=3, batch_size=8)
    result = train_linear(x, y, config, xv, yv)
    assert result.diverged and result.epochs_run == 1
    assert np.isfinite(result.model.weights).all()
    assert result.history[0].train_loss is None
    json.dumps(result.to_dict(), allow_nan=False)  # still strict JSON


def test_rejects_bad_input() -> None:
    x, y = _blobs(20, 4)
    with pytest.raises(InvalidInputError, match="y_train"):
        train_linear(x, y + 5, TrainConfig(), n_classes=3)
    with pytest.raises(InvalidInputError, match="x_train"):
        train_linear(x[:, :, None], y)
    with pytest.raises(InvalidInputError, match="x_val"):
        train_linear(x, y, TrainConfig(), x[:, :3], y)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="finite"):
        train_linear(bad, y)
    with pytest.raises(InvalidInputError, match="momentum"):
        TrainConfig(momentum=1.0)
