"""A trained linear head ``s = x W^T + b``: inference (scores, probabilities, labels) and array persistence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from knnserve.errors import BundleError, InvalidInputError
from knnserve.linear.losses import LOSSES, linear_scores, softmax

MODEL_SCHEMA = 1


def check_features(x: np.ndarray, n_features: int, field: str = "x") -> np.ndarray:
    """Return ``x`` as a C-contiguous float32 (N, n_features) array or raise :class:`InvalidInputError`."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != n_features:
        raise InvalidInputError(field, f"a 2-D array of shape (N, {n_features})", f"shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise InvalidInputError(field, "a numeric array", f"dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise InvalidInputError(field, "finite values", "NaN or infinity")
    return x


@dataclass(frozen=True, eq=False)
class LinearModel:
    """Class templates ``weights`` (C, D) and ``bias`` (C,) trained with ``loss`` ("softmax" or "svm").

    For ``softmax`` :meth:`predict_proba` gives the model's probabilities. For ``svm`` it is a softmax
    over the hinge scores: it ranks like the scores but is NOT calibrated (the hinge loss never asks
    scores to be log-probabilities), so do not read it as a confidence.
    """

    weights: np.ndarray
    bias: np.ndarray
    loss: str = "softmax"
    delta: float = 1.0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise InvalidInputError("loss", f"one of {LOSSES}", repr(self.loss))
        if self.weights.ndim != 2 or self.bias.shape != (self.weights.shape[0],):
            raise InvalidInputError(
                "weights/bias",
                "weights (C, D) and bias (C,)",
                f"{self.weights.shape} and {self.bias.shape}",
            )

    @property
    def n_classes(self) -> int:
        """Number of classes C."""
        return int(self.weights.shape[0])

    @property
    def n_features(self) -> int:
        """Input dimension D."""
        return int(self.weights.shape[1])

    @property
    def calibrated(self) -> bool:
        """Whether :meth:`predict_proba` is a trained probability model (softmax only)."""
        return self.loss == "softmax"

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Raw class scores (N, C) float32 for preprocessed features x (N, D)."""
        return linear_scores(check_features(x, self.n_features), self.weights, self.bias)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Softmax over the scores (N, C); calibrated only for the softmax loss (see the class docstring)."""
        return softmax(self.decision_function(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class indices (N,) int64 of the highest score; ties go to the lowest index."""
        return self.decision_function(x).argmax(axis=1).astype(np.int64)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays to store with ``np.savez`` (no pickle needed to load them back)."""
        return {"weights": self.weights, "bias": self.bias}

    def metadata(self) -> dict[str, Any]:
        """JSON-able description that, with :meth:`to_arrays`, rebuilds the model."""
        return {
            "schema": MODEL_SCHEMA,
            "loss": self.loss,
            "delta": float(self.delta),
            "n_classes": self.n_classes,
            "n_features": self.n_features,
            "calibrated": self.calibrated,
        }

    @classmethod
    def from_arrays(cls, arrays: Any, metadata: dict[str, Any]) -> "LinearModel":
        """Rebuild from :meth:`to_arrays` output (a dict or an ``np.load`` result) and :meth:`metadata`."""
        if metadata.get("schema") != MODEL_SCHEMA:
            raise BundleError(f"linear model schema: expected {MODEL_SCHEMA}, got {metadata.get('schema')!r}")
        weights = np.ascontiguousarray(arrays["weights"], dtype=np.float32)
        bias = np.ascontiguousarray(arrays["bias"], dtype=np.float32)
        expected = (int(metadata["n_classes"]), int(metadata["n_features"]))
        if weights.shape != expected:
            raise BundleError(f"linear weights: expected shape {expected}, got {weights.shape}")
        return cls(weights=weights, bias=bias, loss=str(metadata["loss"]), delta=float(metadata["delta"]))
