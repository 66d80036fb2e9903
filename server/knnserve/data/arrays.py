"""The four arrays a format reader returns, and the checks every reader shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from knnserve.errors import DatasetError


@dataclass(frozen=True)
class Splits:
    """Train and test arrays as read from files, before they become a ``Dataset``.

    ``class_names`` is empty when the files do not name the classes.
    ``content_sha256`` maps a file name (without ``.gz``) to the sha256 of its
    decompressed bytes, for the readers that see whole files (IDX); the
    registry checks it against published values without reading twice.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...] = ()
    content_sha256: Mapping[str, str] = field(default_factory=dict)


def as_labels(labels: np.ndarray, source: str | Path, n_classes: int | None = None) -> np.ndarray:
    """Return ``labels`` as an int64 vector, or raise DatasetError naming ``source``.

    Parameters
    ----------
    labels
        Array read from a file; must be 1-D and of an integer dtype.
    source
        File (or file and key) the labels came from, for the message.
    n_classes
        When given, every label must lie in ``[0, n_classes)``.
    """
    if labels.ndim != 1:
        raise DatasetError(f"{source}: expected a 1-D label vector, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"{source}: expected integer labels, got dtype {labels.dtype}")
    out = labels.astype(np.int64, copy=False)
    if out.size:
        low, high = int(out.min()), int(out.max())
        if low < 0 or (n_classes is not None and high >= n_classes):
            upper = f"{n_classes - 1}" if n_classes is not None else "any"
            raise DatasetError(
                f"{source}: expected labels in 0..{upper}, got values from {low} to {high}"
            )
    return out


def check_pair(x: np.ndarray, y: np.ndarray, x_source: str | Path, y_source: str | Path) -> None:
    """Raise DatasetError unless images and labels have the same number of rows."""
    if x.ndim < 2:
        raise DatasetError(
            f"{x_source}: expected images of shape (N, ...) with at least 2 dimensions, "
            f"got shape {x.shape}"
        )
    if x.shape[0] != y.shape[0]:
        raise DatasetError(
            f"{y_source}: expected {x.shape[0]} labels to match the images in {x_source}, "
            f"got {y.shape[0]}"
        )


def check_same_image_shape(x_train: np.ndarray, x_test: np.ndarray, test_source: str | Path) -> None:
    """Raise DatasetError unless train and test samples have the same shape."""
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"{test_source}: expected test samples of shape {x_train.shape[1:]} like the "
            f"training set, got {x_test.shape[1:]}"
        )


def default_class_names(*label_vectors: np.ndarray) -> tuple[str, ...]:
    """Name classes "0".."K-1" where K is one more than the largest label seen."""
    highest = max((int(y.max()) for y in label_vectors if y.size), default=-1)
    return tuple(str(i) for i in range(highest + 1))
