"""Learning-rate schedules (constant, step, cosine) as a function of fractional epochs elapsed."""

from __future__ import annotations

import math
from dataclasses import dataclass

from knnserve.errors import InvalidInputError

SCHEDULES: tuple[str, ...] = ("constant", "step", "cosine")


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule.

    ``constant`` keeps ``base``; ``step`` multiplies by ``gamma`` every ``step_epochs`` epochs;
    ``cosine`` anneals from ``base`` to ``base * min_factor`` over ``total_epochs`` along half a cosine.
    """

    kind: str = "constant"
    base: float = 0.1
    total_epochs: int = 1
    step_epochs: int = 5
    gamma: float = 0.1
    min_factor: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise InvalidInputError("schedule", f"one of {SCHEDULES}", repr(self.kind))
        if not self.base > 0:
            raise InvalidInputError("learning_rate", "a number > 0", self.base)
        if self.total_epochs < 1:
            raise InvalidInputError("epochs", "an integer >= 1", self.total_epochs)
        if self.step_epochs < 1:
            raise InvalidInputError("step_epochs", "an integer >= 1", self.step_epochs)

    def rate(self, epochs_done: float) -> float:
        """Learning rate after ``epochs_done`` (fractional) epochs of training."""
        if self.kind == "constant":
            return self.base
        if self.kind == "step":
            return self.base * self.gamma ** math.floor(epochs_done / self.step_epochs)
        progress = min(max(epochs_done / self.total_epochs, 0.0), 1.0)
        factor = self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))
        return self.base * factor
