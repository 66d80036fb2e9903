"""Linear scores and the two data losses (softmax cross-entropy, multiclass SVM hinge) with analytic gradients."""

from __future__ import annotations

import numpy as np

from knnserve.errors import InvalidInputError

LOSSES: tuple[str, ...] = ("softmax", "svm")


def linear_scores(x: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Return class scores ``s = x W^T + b``.

    Parameters
    ----------
    x : (N, D) array of feature rows.
    weights : (C, D) array, one row (template) per class.
    bias : (C,) array.

    Returns
    -------
    (N, C) array in the dtype numpy's promotion gives (float32 in, float32 out).
    """
    return x @ weights.T + bias


def log_softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise ``log(e^{s_j} / sum_k e^{s_k})``, stable for huge scores (log-sum-exp trick)."""
    # Shifting by the row max leaves the result unchanged but keeps exp() <= 1, so nothing overflows.
    shifted = scores - scores.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax probabilities of an (N, C) score array; rows sum to 1."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def softmax_loss(scores: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy ``-log softmax(s)_y`` over the batch and its gradient w.r.t. the scores.

    Parameters
    ----------
    scores : (N, C) float array.
    y : (N,) integer class indices in ``[0, C)``.

    Returns
    -------
    (loss, dscores) with dscores of shape (N, C) and the dtype of ``scores``.
    """
    n = scores.shape[0]
    rows = np.arange(n)
    log_p = log_softmax(scores)
    loss = -float(log_p[rows, y].mean(dtype=np.float64))
    dscores = np.exp(log_p)
    dscores[rows, y] -= 1
    dscores /= n
    return loss, dscores


def svm_loss(scores: np.ndarray, y: np.ndarray, delta: float = 1.0) -> tuple[float, np.ndarray]:
    """Mean multiclass hinge ``sum_{j != y} max(0, s_j - s_y + delta)`` and its (sub)gradient w.r.t. the scores.

    At a margin of exactly zero the subgradient 0 is taken.

    Parameters
    ----------
    scores : (N, C) float array.
    y : (N,) integer class indices in ``[0, C)``.
    delta : the margin; 1 by default (its scale trades off against the regularization strength).

    Returns
    -------
    (loss, dscores) with dscores of shape (N, C) and the dtype of ``scores``.
    """
    n = scores.shape[0]
    rows = np.arange(n)
    margins = scores - scores[rows, y][:, None] + delta
    margins[rows, y] = 0
    np.maximum(margins, 0, out=margins)
    loss = float(margins.sum(dtype=np.float64) / n)
    # Every violating class j pushes s_j up by 1 and s_y down by 1.
    dscores = (margins > 0).astype(scores.dtype)
    dscores[rows, y] = -dscores.sum(axis=1)
    dscores /= n
    return loss, dscores


def data_loss(
    scores: np.ndarray, y: np.ndarray, loss: str, delta: float = 1.0
) -> tuple[float, np.ndarray]:
    """Dispatch to :func:`softmax_loss` or :func:`svm_loss` by name."""
    if loss == "softmax":
        return softmax_loss(scores, y)
    if loss == "svm":
        return svm_loss(scores, y, delta)
    raise InvalidInputError("loss", f"one of {LOSSES}", repr(loss))
