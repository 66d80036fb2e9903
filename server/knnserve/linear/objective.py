"""The full training objective: mean data loss over a batch plus lambda * R(W), with gradients for W and b."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knnserve.linear.losses import data_loss, linear_scores
from knnserve.linear.regularizers import penalty


@dataclass(frozen=True)
class Objective:
    """What is minimised: which data loss, its margin, and which penalty with which strength."""

    loss: str = "softmax"
    delta: float = 1.0
    reg: str = "l2"
    reg_strength: float = 1e-4
    l2_ratio: float = 1.0


@dataclass(frozen=True)
class LossValue:
    """One evaluation of the objective: total = data + penalty, the gradients and the batch scores."""

    total: float
    data: float
    penalty: float
    grad_weights: np.ndarray
    grad_bias: np.ndarray
    scores: np.ndarray


def loss_and_gradients(
    weights: np.ndarray,
    bias: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    objective: Objective,
) -> LossValue:
    """Evaluate the objective on a batch and return its value and gradients (vectorised, no per-row loop).

    Parameters
    ----------
    weights : (C, D) class templates.
    bias : (C,) biases; not regularized.
    x : (N, D) features, same float dtype as the weights (float32 to train, float64 to check gradients).
    y : (N,) integer class indices.
    objective : the loss and penalty to apply.
    """
    scores = linear_scores(x, weights, bias)
    data, dscores = data_loss(scores, y, objective.loss, objective.delta)
    reg_value, reg_grad = penalty(weights, objective.reg, objective.reg_strength, objective.l2_ratio)
    grad_weights = dscores.T @ x
    grad_weights += reg_grad
    grad_bias = dscores.sum(axis=0)
    return LossValue(
        total=data + reg_value,
        data=data,
        penalty=reg_value,
        grad_weights=grad_weights,
        grad_bias=grad_bias,
        scores=scores,
    )
