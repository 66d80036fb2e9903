"""Seeded hyper-parameter search (grid or random) over learning rate and lambda, scored on a validation split."""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from knnserve.errors import InvalidInputError
from knnserve.linear.train import TrainConfig, LinearFit, train_linear

SEARCH_MODES: tuple[str, ...] = ("grid", "random")

# Tuned on a 10% validation split of Fashion-MNIST pixels (scaled, mean-centred); see docs/linear.md.
DEFAULT_LEARNING_RATES: dict[str, tuple[float, ...]] = {
    "softmax": (0.1, 0.2, 0.4),
    "svm": (0.02, 0.05, 0.1),
}
DEFAULT_REG_STRENGTHS: tuple[float, ...] = (1e-5, 1e-4, 1e-3)


@dataclass(frozen=True)
class SearchSpace:
    """Candidates to try.

    ``grid`` tries every (learning_rate, reg_strength) pair. ``random`` draws ``n_trials`` pairs
    log-uniformly between the smallest and largest value of each list (both must be > 0) with
    ``seed``. A zero in ``reg_strengths`` is allowed in grid mode only.
    """

    learning_rates: tuple[float, ...]
    reg_strengths: tuple[float, ...]
    mode: str = "grid"
    n_trials: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in SEARCH_MODES:
            raise InvalidInputError("mode", f"one of {SEARCH_MODES}", repr(self.mode))
        if not self.learning_rates or not self.reg_strengths:
            raise InvalidInputError("search space", "at least one learning rate and one reg strength", "an empty list")
        if any(not lr > 0 for lr in self.learning_rates):
            raise InvalidInputError("learning_rates", "numbers > 0", self.learning_rates)
        if any(not reg >= 0 for reg in self.reg_strengths):
            raise InvalidInputError("reg_strengths", "numbers >= 0", self.reg_strengths)
        if self.mode == "random":
            if self.n_trials < 1:
                raise InvalidInputError("n_trials", "an integer >= 1", self.n_trials)
            if min(self.reg_strengths) <= 0:
                raise InvalidInputError(
                    "reg_strengths", "numbers > 0 for random (log-uniform) search", self.reg_strengths
                )

    def candidates(self) -> list[tuple[float, float]]:
        """The (learning_rate, reg_strength) pairs in the order they are tried."""
        if self.mode == "grid":
            return list(itertools.product(self.learning_rates, self.reg_strengths))
        rng = np.random.default_rng(self.seed)

        def draw(values: tuple[float, ...]) -> float:
            low, high = math.log(min(values)), math.log(max(values))
            return float(math.exp(rng.uniform(low, high)))

        return [(draw(self.learning_rates), draw(self.reg_strengths)) for _ in range(self.n_trials)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the fields."""
        return asdict(self)


def default_space(loss: str = "softmax", mode: str = "grid", n_trials: int = 8, seed: int = 0) -> SearchSpace:
    """The tuned default search space for a loss (3 learning rates x 3 lambdas in grid mode)."""
    if loss not in DEFAULT_LEARNING_RATES:
        raise InvalidInputError("loss", f"one of {tuple(DEFAULT_LEARNING_RATES)}", repr(loss))
    return SearchSpace(DEFAULT_LEARNING_RATES[loss], DEFAULT_REG_STRENGTHS, mode, n_trials, seed)


@dataclass(frozen=True)
class HyperparameterSearch:
    """The whole table (one row per candidate), the winner's index and its trained result."""

    table: tuple[dict[str, Any], ...]
    best_index: int
    best: LinearFit
    space: SearchSpace
    seconds: float

    @property
    def best_params(self) -> dict[str, float]:
        """The chosen learning rate and lambda."""
        row = self.table[self.best_index]
        return {"learning_rate": row["learning_rate"], "reg_strength": row["reg_strength"]}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able record: space, table, choice, the winner's training curve and total seconds."""
        return {
            "space": self.space.to_dict(),
            "table": [dict(row) for row in self.table],
            "best_index": self.best_index,
            "best_params": self.best_params,
            "best_config": self.best.config.to_dict(),
            "best_history": self.best.to_dict()["history"],
            "seconds": self.seconds,
        }


def _row(index: int, result: LinearFit) -> dict[str, Any]:
    best_epoch = result.best_epoch
    best_record = result.history[best_epoch - 1] if best_epoch > 0 else None
    return {
        "index": index,
        "learning_rate": result.config.learning_rate,
        "reg_strength": result.config.reg_strength,
        "val_accuracy": result.best_val_accuracy,
        "val_loss": None if best_record is None else best_record.val_loss,
        "best_epoch": best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "diverged": result.diverged,
        "seconds": result.seconds,
    }


def search_hyperparameters(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    base: TrainConfig = TrainConfig(),
    space: SearchSpace | None = None,
    n_classes: int | None = None,
    verbose: bool = False,
) -> HyperparameterSearch:
    """Train one model per candidate on (x_train, y_train) and keep the best on the validation split.

    Every candidate uses ``base`` with its learning rate and lambda replaced, including ``base.seed``,
    so candidates see the same initial weights and shuffles and the table is reproducible (apart from
    the seconds column). The winner has the highest validation accuracy; ties go to the lower
    validation loss, then to the earlier candidate. Never pass the test set as the validation split.

    Parameters
    ----------
    x_train, y_train, x_val, y_val : preprocessed features (N, D) and class indices.
    base : the fixed part of the training configuration.
    space : candidates; defaults to :func:`default_space` for ``base.loss``.
    n_classes : C; defaults to one more than the largest label seen.
    verbose : a tqdm bar over candidates.
    """
    if x_val is None or y_val is None or len(y_val) == 0:
        raise InvalidInputError("x_val/y_val", "a non-empty validation split", "none")
    space = space or default_space(base.loss)
    if n_classes is None:
        n_classes = int(max(np.max(y_train), np.max(y_val))) + 1
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    results: list[LinearFit] = []
    bar = tqdm(space.candidates(), desc=f"search {base.loss}", unit="candidate", disable=not verbose)
    for index, (learning_rate, reg_strength) in enumerate(bar):
        config = replace(base, learning_rate=learning_rate, reg_strength=reg_strength)
        result = train_linear(x_train, y_train, config, x_val, y_val, n_classes=n_classes)
        rows.append(_row(index, result))
        results.append(result)
        bar.set_postfix(val_acc=f"{rows[-1]['val_accuracy'] or 0:.4f}")
    bar.close()

    def rank(i: int) -> tuple[float, float, int]:
        acc = rows[i]["val_accuracy"]
        loss = rows[i]["val_loss"]
        return (-(acc if acc is not None else -1.0), loss if loss is not None else math.inf, i)

    best_index = min(range(len(rows)), key=rank)
    return HyperparameterSearch(
        table=tuple(rows),
        best_index=best_index,
        best=results[best_index],
        space=space,
        seconds=time.perf_counter() - started,
    )
