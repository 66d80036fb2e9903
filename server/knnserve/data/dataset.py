"""The in-memory dataset every loader returns: train and test splits plus metadata."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np


def array_checksum(*arrays: np.ndarray) -> str:
    """Return a sha256 hex digest over the dtype, shape and C-order bytes of the arrays."""
    digest = hashlib.sha256()
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
        digest.update(memoryview(contiguous).cast("B"))
    return digest.hexdigest()


@dataclass(frozen=True)
class Dataset:
    """Images (N, *image_shape) with integer labels (N,), split into train and test.

    ``x_*`` keep the dtype of the source files (uint8 pixels for IDX and CIFAR);
    ``y_*`` are int64 class indices into ``class_names``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str = ""
    checksum: str = field(default="")

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (28, 28) or (32, 32, 3)."""
        return tuple(self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def computed_checksum(self) -> str:
        """sha256 over all four arrays, as stored in model manifests."""
        return array_checksum(self.x_train, self.y_train, self.x_test, self.y_test)
