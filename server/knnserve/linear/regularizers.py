"""Weight penalties R(W) (L2, L1, elastic net) and their (sub)gradients; the bias is never penalised."""

from __future__ import annotations

import numpy as np

from knnserve.errors import InvalidInputError

REGULARIZERS: tuple[str, ...] = ("none", "l2", "l1", "elasticnet")


def penalty(
    weights: np.ndarray, reg: str, strength: float, l2_ratio: float = 1.0
) -> tuple[float, np.ndarray]:
    """Return ``strength * R(W)`` and its gradient w.r.t. ``W``.

    Parameters
    ----------
    weights : (C, D) weight matrix (never the bias).
    reg : ``"none"``, ``"l2"`` (``sum W^2``), ``"l1"`` (``sum |W|``) or
        ``"elasticnet"`` (``sum beta * W^2 + |W|``).
    strength : lambda, the regularization strength (>= 0).
    l2_ratio : beta, the weight of the squared term in the elastic net.

    Returns
    -------
    (value, grad); grad has the shape and dtype of ``weights``. The L1 subgradient at 0 is 0.
    """
    if reg == "none" or strength == 0.0:
        if reg not in REGULARIZERS:
            raise InvalidInputError("reg", f"one of {REGULARIZERS}", repr(reg))
        return 0.0, np.zeros_like(weights)
    if reg == "l2":
        value = float(np.sum(weights * weights, dtype=np.float64))
        grad = 2 * weights
    elif reg == "l1":
        value = float(np.sum(np.abs(weights), dtype=np.float64))
        grad = np.sign(weights)
    elif reg == "elasticnet":
        value = float(
            l2_ratio * np.sum(weights * weights, dtype=np.float64)
            + np.sum(np.abs(weights), dtype=np.float64)
        )
        grad = 2 * l2_ratio * weights + np.sign(weights)
    else:
        raise InvalidInputError("reg", f"one of {REGULARIZERS}", repr(reg))
    grad = grad.astype(weights.dtype, copy=False)
    grad *= weights.dtype.type(strength)
    return strength * value, grad
