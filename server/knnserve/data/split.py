"""Seeded, stratified carving of a validation split out of the training data (never the test set)."""

from __future__ import annotations

import numpy as np

from knnserve.errors import InvalidInputError


def validation_split(y: np.ndarray, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (train_idx, val_idx) index arrays splitting labels ``y`` by ``val_fraction``.

    Stratified by class when every class has at least two samples and the validation part can hold
    one of each; otherwise a plain seeded random split (tiny data, e.g. inside cross-validation).
    ``val_fraction == 0`` gives an empty validation part.
    """
    from sklearn.model_selection import train_test_split  # slow import, needed only here

    y = np.asarray(y)
    if not 0 <= val_fraction < 1:
        raise InvalidInputError("val_fraction", "a number in [0, 1)", val_fraction)
    indices = np.arange(y.shape[0])
    if val_fraction == 0:
        return indices, indices[:0]
    n_val = int(np.ceil(val_fraction * y.shape[0]))
    if n_val >= y.shape[0]:
        raise InvalidInputError(
            "val_fraction", f"small enough to leave training samples out of {y.shape[0]}", val_fraction
        )
    _, counts = np.unique(y, return_counts=True)
    stratify = y if counts.min() >= 2 and counts.size <= n_val and counts.size <= y.shape[0] - n_val else None
    train_idx, val_idx = train_test_split(indices, test_size=n_val, random_state=seed, stratify=stratify)
    return np.sort(train_idx), np.sort(val_idx)
