"""Analytic gradients against central-difference numerical gradients in float64, for every loss x penalty."""

from __future__ import annotations

import numpy as np
import pytest

from knnserve.linear.losses import linear_scores
from knnserve.linear.objective import Objective, loss_and_gradients
from knnserve.linear.regularizers import penalty

N, D, C = 7, 5, 4


def _problem(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D))
    y = rng.integers(0, C, N)
    weights = rng.standard_normal((C, D))
    bias = rng.standard_normal(C)
    return x, y, weights, bias


def _numerical(f, array: np.ndarray, h: float = 1e-6) -> np.ndarray:  # noqa: ANN001
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        old = array[index]
        array[index] = old + h
        plus = f()
        array[index] = old - h
        minus = f()
        array[index] = old
        grad[index] = (plus - minus) / (2 * h)
    return grad


@pytest.mark.parametrize("loss", ["softmax", "svm"])
@pytest.mark.parametrize("reg", ["none", "l2", "l1", "elasticnet"])
def test_analytic_gradients_match_numerical(loss: str, reg: str) -> None:
    x, y, weights, bias = _problem()
    objective = Objective(loss=loss, delta=1.0, reg=reg, reg_strength=0.3, l2_ratio=0.7)
    # Central differences are only valid away from the hinge and |w| kinks; make sure they are.
    margins = linear_scores(x, weights, bias)
    margins = margins - margins[np.arange(N), y][:, None] + 1.0
    margins[np.arange(N), y] = 10.0
    assert np.abs(margins).min() > 1e-3 and np.abs(weights).min() > 1e-3

    value = loss_and_gradients(weights, bias, x, y, objective)
    assert value.grad_weights.dtype == np.float64

    def total() -> float:
        return loss_and_gradients(weights, bias, x, y, objective).total

    num_w = _numerical(total, weights)
    num_b = _numerical(total, bias)
    np.testing.assert_allclose(value.grad_weights, num_w, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(value.grad_bias, num_b, rtol=1e-6, atol=1e-8)
    assert value.total == pytest.approx(value.data + value.penalty)


@pytest.mark.parametrize("reg", ["l2", "l1", "elasticnet"])
def test_bias_is_not_regularized(reg: str) -> None:
    x, y, weights, bias = _problem(1)
    plain = loss_and_gradients(weights, bias, x, y, Objective(reg="none"))
    regularized = loss_and_gradients(weights, bias, x, y, Objective(reg=reg, reg_strength=5.0))
    np.testing.assert_array_equal(plain.grad_bias, regularized.grad_bias)
    # Changing the bias changes the data loss only; the penalty stays put.
    shifted = loss_and_gradients(weights, bias + 100.0, x, y, Objective(reg=reg, reg_strength=5.0))
    assert shifted.penalty == regularized.penalty
    assert regularized.penalty > 0


def test_penalty_values_by_hand() -> None:
    weights = np.array([[1.0, -2.0], [0.0, 3.0]])
    assert penalty(weights, "l2", 0.5)[0] == pytest.approx(0.5 * (1 + 4 + 0 + 9))
    assert penalty(weights, "l1", 0.5)[0] == pytest.approx(0.5 * (1 + 2 + 0 + 3))
    assert penalty(weights, "elasticnet", 0.5, l2_ratio=2.0)[0] == pytest.approx(0.5 * (2 * 14 + 6))
    value, grad = penalty(weights, "none", 0.5)
    assert value == 0.0 and not grad.any()
    # The L1 subgradient at an exact zero is zero.
    assert penalty(weights, "l1", 1.0)[1][1, 0] == 0.0


def test_float32_in_float32_out() -> None:
    x, y, weights, bias = (a.astype(np.float32) if a.dtype.kind == "f" else a for a in _problem(2))
    value = loss_and_gradients(weights, bias, x, y, Objective(loss="svm", reg="elasticnet", reg_strength=0.1))
    assert value.grad_weights.dtype == np.float32 and value.grad_bias.dtype == np.float32
