"""A seeded, stratified train/validation split of a training set."""

from __future__ import annotations

import numpy as np

from knnserve.errors import InvalidInputError


def train_val_split(
    x: np.ndarray, y: np.ndarray, *, val_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split ``(x, y)`` into train and validation parts with the same class proportions.

    Parameters
    ----------
    x, y
        Samples (N, ...) and their integer labels (N,).
    val_fraction
        Share of the samples held out, in (0, 1); each class must have at least two samples.
    seed
        Seed of the shuffle: the same seed gives the same split.

    Returns
    -------
    x_train, y_train, x_val, y_val
        Rows keep their original order within each part.
    """
    from sklearn.model_selection import train_test_split  # slow import, needed only here

    if not 0.0 < val_fraction < 1.0:
        raise InvalidInputError("val_fraction", "a number strictly between 0 and 1", val_fraction)
    if x.shape[0] != y.shape[0]:
        raise InvalidInputError("y", f"{x.shape[0]} labels, one per row of x", y.shape[0])
    indices = np.arange(y.shape[0])
    try:
        train_idx, val_idx = train_test_split(indices, test_size=val_fraction, random_state=seed, stratify=y)
    except ValueError as error:
        # scikit-learn refuses classes with one sample or a split smaller than the class count.
        raise InvalidInputError(
            "val_fraction", "a split leaving every class at least one sample on each side", str(error)
        ) from error
    train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]
