"""The values a model takes: finite, and small enough that float32 distances between them stay finite."""

from __future__ import annotations

import numpy as np

from knnserve.errors import InvalidInputError

# Inputs larger than this make float32 distances overflow to infinity (|x|^2 summed over the features,
# and PCA or L2 norms of it), which would vote nothing (-1): refuse them where they enter. uint8
# pixels never come close; 1e15 leaves room for 1e7 features.
MAX_INPUT_MAGNITUDE = 1e15


def check_magnitude(rows: np.ndarray, field: str) -> None:
    """InvalidInputError unless every value is finite and within +-MAX_INPUT_MAGNITUDE (one pass)."""
    if not (np.abs(rows) <= MAX_INPUT_MAGNITUDE).all():
        raise InvalidInputError(
            field, f"finite values of magnitude at most {MAX_INPUT_MAGNITUDE:g} (larger ones overflow float32 distances)",
            "NaN, infinity or a larger value",
        )


__all__ = ["MAX_INPUT_MAGNITUDE", "check_magnitude"]
