"""Learning-rate schedules: constant, step decay, cosine annealing."""

from __future__ import annotations

import math

import pytest

from knnserve.errors import InvalidInputError
from knnserve.linear.schedule import Schedule


def test_constant() -> None:
    schedule = Schedule("constant", base=0.3, total_epochs=10)
    assert [schedule.rate(t) for t in (0, 4.5, 10)] == [0.3, 0.3, 0.3]


def test_step() -> None:
    schedule = Schedule("step", base=1.0, total_epochs=10, step_epochs=3, gamma=0.5)
    assert [schedule.rate(t) for t in (0, 2.99, 3, 5.5, 6, 9)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]


def test_cosine() -> None:
    schedule = Schedule("cosine", base=2.0, total_epochs=4)
    assert schedule.rate(0) == pytest.approx(2.0)
    assert schedule.rate(2) == pytest.approx(1.0)
    assert schedule.rate(1) == pytest.approx(1.0 + math.cos(math.pi / 4))
    assert schedule.rate(4) == pytest.approx(0.0, abs=1e-12)
    assert schedule.rate(9) == pytest.approx(0.0, abs=1e-12)  # clamped past the end


def test_rejects_bad_values() -> None:
    with pytest.raises(InvalidInputError, match="schedule"):
        Schedule("linear")
    with pytest.raises(InvalidInputError, match="learning_rate"):
        Schedule("constant", base=0.0)
