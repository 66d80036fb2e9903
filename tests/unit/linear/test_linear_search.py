"""Hyper-parameter search: complete table, best row chosen on validation, seeded reproducibility."""

from __future__ import annotations

import json

import numpy as np
import pytest

from knnserve.errors import InvalidInputError
from knnserve.linear.search import SearchSpace, default_space, search_hyperparameters
from knnserve.linear.train import TrainConfig

COLUMNS = {
    "index", "learning_rate", "reg_strength", "val_accuracy", "val_loss",
    "best_epoch", "epochs_run", "stopped_early", "diverged", "seconds",
}


def _data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(7).standard_normal((3, 5)) * 2
    y = rng.integers(0, 3, 150)
    return (centres[y] + 1.5 * rng.standard_normal((150, 5))).astype(np.float32), y


BASE = TrainConfig(epochs=4, batch_size=16, patience=2)


def _strip_seconds(table: tuple[dict, ...]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in table]


def test_grid_table_is_complete_and_best_is_argmax() -> None:
    x, y = _data(0)
    xv, yv = _data(1)
    space = SearchSpace(learning_rates=(0.001, 0.05, 0.5), reg_strengths=(0.0, 1e-2))
    result = search_hyperparameters(x, y, xv, yv, BASE, space)
    assert len(result.table) == 6
    assert [(r["learning_rate"], r["reg_strength"]) for r in result.table] == space.candidates()
    for row in result.table:
        assert set(row) == COLUMNS
        assert 0 <= row["val_accuracy"] <= 1 and 1 <= row["epochs_run"] <= BASE.epochs and row["seconds"] > 0
    accs = [r["val_accuracy"] for r in result.table]
    assert result.table[result.best_index]["val_accuracy"] == max(accs)
    assert result.best.config.learning_rate == result.best_params["learning_rate"]
    assert result.best.config.reg_strength == result.best_params["reg_strength"]
    assert (result.best.model.predict(xv) == yv).mean() == max(accs)
    record = json.loads(json.dumps(result.to_dict()))
    assert record["best_params"] == result.best_params and len(record["table"]) == 6


@pytest.mark.parametrize("mode", ["grid", "random"])
def test_search_is_seeded_and_reproducible(mode: str) -> None:
    x, y = _data(2)
    xv, yv = _data(3)
    space = SearchSpace((0.01, 0.3), (1e-4, 1e-1), mode=mode, n_trials=3, seed=5)
    first = search_hyperparameters(x, y, xv, yv, BASE, space)
    second = search_hyperparameters(x, y, xv, yv, BASE, space)
    assert _strip_seconds(first.table) == _strip_seconds(second.table)
    assert first.best_index == second.best_index
    np.testing.assert_array_equal(first.best.model.weights, second.best.model.weights)


def test_random_candidates_are_log_uniform_in_range_and_depend_on_seed() -> None:
    space = SearchSpace((1e-3, 1.0), (1e-6, 1e-2), mode="random", n_trials=50, seed=0)
    candidates = space.candidates()
    assert len(candidates) == 50
    assert all(1e-3 <= lr <= 1.0 and 1e-6 <= reg <= 1e-2 for lr, reg in candidates)
    # Log-uniform: roughly half of the learning rates fall below the geometric midpoint 10^-1.5.
    below = sum(lr < 10**-1.5 for lr, _ in candidates)
    assert 15 <= below <= 35
    assert SearchSpace((1e-3, 1.0), (1e-6, 1e-2), mode="random", n_trials=50, seed=1).candidates() != candidates


def test_default_space_and_validation() -> None:
    assert len(default_space("softmax").candidates()) == 9
    assert default_space("svm").learning_rates != default_space("softmax").learning_rates
    with pytest.raises(InvalidInputError, match="reg_strengths"):
        SearchSpace((0.1,), (0.0, 1e-3), mode="random")
    with pytest.raises(InvalidInputError, match="mode"):
        SearchSpace((0.1,), (1e-3,), mode="bayes")
    x, y = _data(0)
    with pytest.raises(InvalidInputError, match="validation"):
        search_hyperparameters(x, y, x[:0], y[:0], BASE)
