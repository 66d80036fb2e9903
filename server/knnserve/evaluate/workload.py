"""The data an evaluation searches: base rows, query rows, their labels, and the single-query subsamples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from knnserve.data import Dataset
from knnserve.errors import InvalidInputError


@dataclass(frozen=True)
class Workload:
    """Flattened base and query rows (original dtype) with labels, plus query order for single-query mode.

    Attributes
    ----------
    base, base_labels : (N, d) training rows and their class indices.
    queries, query_labels : (n, d) query rows and their true classes.
    query_rows : (n,) row numbers of the queries in the test split.
    single_order : a seeded permutation of 0..n-1; single-query mode times its first rows, so the
        exact indexes' smaller subsample is a prefix of the approximate ones'.
    class_names : class index -> name.
    """

    name: str
    base: np.ndarray
    base_labels: np.ndarray
    queries: np.ndarray
    query_labels: np.ndarray
    query_rows: np.ndarray
    single_order: np.ndarray
    class_names: tuple[str, ...]

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.base.shape[1])

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def queries_f32(self) -> np.ndarray:
        """Query rows as C-contiguous float32, what the indexes search."""
        return np.ascontiguousarray(self.queries, dtype=np.float32)

    def single_rows(self, n: int) -> np.ndarray:
        """The first ``n`` rows of the single-query order (all of them when ``n`` exceeds n)."""
        return self.single_order[: min(n, self.single_order.size)]


def flat_rows(x: np.ndarray) -> np.ndarray:
    """(N, *shape) images as (N, d) rows without copying when possible."""
    return x.reshape(x.shape[0], -1)


def make_workload(dataset: Dataset, *, queries: int | None = None, seed: int = 0) -> Workload:
    """Queries are the test split, or a seeded random subset of ``queries`` of its rows in their original order."""
    n_test = int(dataset.x_test.shape[0])
    if n_test == 0:
        raise InvalidInputError("dataset", "a test split with at least one row (the queries)", f"{dataset.name}: 0 test rows")
    rng = np.random.default_rng(seed)
    if queries is None or queries >= n_test:
        rows = np.arange(n_test)
    else:
        rows = np.sort(rng.choice(n_test, size=queries, replace=False))
    return Workload(
        name=dataset.name,
        base=flat_rows(dataset.x_train),
        base_labels=np.asarray(dataset.y_train, dtype=np.int64),
        queries=np.ascontiguousarray(flat_rows(dataset.x_test)[rows]),
        query_labels=np.asarray(dataset.y_test, dtype=np.int64)[rows],
        query_rows=rows,
        single_order=rng.permutation(rows.size),
        class_names=tuple(dataset.class_names),
    )


def holdout_split(n: int, holdout: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) row numbers: ``holdout`` seeded random training rows set aside as tuning queries."""
    if not 1 <= holdout < n:
        raise InvalidInputError("tune_queries", f"between 1 and {n - 1} (fewer than the training rows)", holdout)
    rng = np.random.default_rng(seed + 1)
    held = np.zeros(n, dtype=bool)
    held[rng.choice(n, size=holdout, replace=False)] = True
    return np.flatnonzero(~held), np.flatnonzero(held)
