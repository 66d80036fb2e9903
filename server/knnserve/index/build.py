"""Build an index from a resolved spec: validate the training rows, train if needed, add in chunks."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from knnserve.errors import InvalidInputError
from knnserve.index import backend
from knnserve.index.spec import ResolvedSpec

ADD_CHUNK_ROWS = 16384


@dataclass(frozen=True)
class BuildReport:
    """Timings of one index build, in seconds."""

    train_seconds: float
    add_seconds: float


def as_float32_rows(x: np.ndarray, d: int, *, field: str = "x") -> np.ndarray:
    """Validate a batch of vectors and return it as C-contiguous float32 (n, d)."""
    if not isinstance(x, np.ndarray):
        raise InvalidInputError(field, "a numpy array", type(x).__name__)
    if x.ndim != 2:
        raise InvalidInputError(field, f"a 2-D array (rows, {d})", f"shape {x.shape}")
    if x.shape[0] < 1:
        raise InvalidInputError(field, "at least one row", "0 rows")
    if x.shape[1] != d:
        raise InvalidInputError(field, f"{d} columns (the index dimension)", f"{x.shape[1]}")
    if x.dtype.kind not in "uif":
        raise InvalidInputError(field, "a numeric dtype (uint8 or float32)", str(x.dtype))
    out = np.ascontiguousarray(x, dtype=np.float32)
    if x.dtype.kind == "f" and not np.isfinite(out).all():
        raise InvalidInputError(field, "finite values", "NaN or infinity")
    return out


def build_index(x: np.ndarray, spec: ResolvedSpec, *, progress: bool = False) -> tuple[backend.Index, BuildReport]:
    """Create the index ``spec`` describes, train it on ``x`` if it needs training, and add ``x``.

    ``x`` is (n, d) with any numeric dtype; it is converted to float32 in chunks so a uint8 matrix
    never exists as float32 in full.
    """
    if x.ndim != 2 or x.shape[0] < 1:
        raise InvalidInputError("training data", "a non-empty 2-D array", f"shape {x.shape}")
    n, d = x.shape
    index = backend.new_index(d, spec.factory, spec.metric, spec.build_params)
    started = time.perf_counter()
    if not index.is_trained:
        with tqdm(total=1, desc=f"train {spec.factory}", disable=not progress, leave=False) as bar:
            index.train(as_float32_rows(x, d, field="training data"))
            bar.update(1)
    trained = time.perf_counter()
    with tqdm(total=n, desc=f"add to {spec.factory}", unit="vec", disable=not progress, leave=False) as bar:
        for start in range(0, n, ADD_CHUNK_ROWS):
            chunk = as_float32_rows(x[start : start + ADD_CHUNK_ROWS], d, field="training data")
            index.add(chunk)
            bar.update(chunk.shape[0])
    return index, BuildReport(train_seconds=trained - started, add_seconds=time.perf_counter() - trained)


__all__ = ["ADD_CHUNK_ROWS", "BuildReport", "as_float32_rows", "build_index"]
