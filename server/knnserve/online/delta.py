"""The rows added online, searched exactly beside the bundle's integer kernel, and the two results merged.

The exact-int8 kernel (``knnserve.kernels``) holds the bundle's rows only. For a raw-uint8 Flat
bundle, a search of a changed model then runs the kernel over the bundle's rows and this exact
search over the added ones, and merges the two by (distance, id) — the neighbours FAISS would give
over all of them, ties by the lower id, so searches keep the kernel's speed until the snapshot.

Exactness in float32 BLAS: for bytes x, y the dot product x.y reaches 255 x 255 x d, beyond float32's
exact integers (2^24) from d = 259. The query is cut into nibbles, x = 16a + b with a, b in 0..15, so
each partial product a.y, b.y stays below 15 x 255 x d < 2^24 for d <= 4,386 and every partial sum is
an exact integer; x.y = 16 a.y + b.y is then formed in int64.
"""

from __future__ import annotations

import numpy as np

# a.y <= 15 * 255 * d must stay below 2^24 (float32's exact integers).
MAX_DIM = (2**24 - 1) // (15 * 255)


class AddedRows:
    """uint8-valued rows (stored float32, grown by doubling) with ids first_id, first_id + 1, ...; exact L2 search."""

    def __init__(self, dim: int, first_id: int) -> None:
        self.dim = dim
        self.first_id = first_id
        self._rows = np.empty((0, dim), dtype=np.float32)
        self._norms = np.empty(0, dtype=np.int64)
        self.size = 0

    def extend(self, rows: np.ndarray) -> None:
        """Append rows (n, dim) whose values are integers in 0..255."""
        needed = self.size + rows.shape[0]
        if needed > self._rows.shape[0]:
            capacity = max(needed, 2 * self._rows.shape[0], 256)
            grown = np.empty((capacity, self.dim), dtype=np.float32)
            grown[: self.size] = self._rows[: self.size]
            norms = np.empty(capacity, dtype=np.int64)
            norms[: self.size] = self._norms[: self.size]
            self._rows, self._norms = grown, norms
        wide = rows.astype(np.int64)
        self._rows[self.size : needed] = rows
        self._norms[self.size : needed] = np.einsum("ij,ij->i", wide, wide)
        self.size = needed

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Squared L2 distances (float32, exact integers rounded as FAISS rounds them) and ids of the k nearest added rows.

        ``queries``: float32 (n, dim) of integers in 0..255. Fewer than k added rows: padded with -1 ids.
        """
        n, m = queries.shape[0], self.size
        kk = min(k, m)
        distances = np.full((n, k), np.inf, dtype=np.float32)
        ids = np.full((n, k), -1, dtype=np.int64)
        if kk == 0:
            return distances, ids
        base = self._rows[:m]
        high = np.floor(queries / 16.0)
        low = queries - 16.0 * high
        products = np.vstack([high, low]).astype(np.float32) @ base.T  # exact integers, see the module
        dots = 16 * products[:n].astype(np.int64) + products[n:].astype(np.int64)
        wide = queries.astype(np.int64)
        exact = np.einsum("ij,ij->i", wide, wide)[:, None] + self._norms[None, :m] - 2 * dots
        nearest = np.argpartition(exact, kk - 1, axis=1)[:, :kk] if kk < m else np.broadcast_to(np.arange(m), (n, m))
        chosen = np.take_along_axis(exact, nearest, axis=1)
        order = np.lexsort((nearest, chosen), axis=1)  # by distance, then by id
        distances[:, :kk] = np.take_along_axis(chosen, order, axis=1).astype(np.float32)
        ids[:, :kk] = np.take_along_axis(nearest, order, axis=1) + self.first_id
        return distances, ids


def merge(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest of two searches' (distances, ids), by distance then id; -1 ids (none found) last."""
    distances = np.concatenate([first[0], second[0]], axis=1)
    ids = np.concatenate([first[1], second[1]], axis=1)
    missing = ids < 0
    keys = np.where(missing, np.inf, distances)
    order = np.lexsort((np.where(missing, np.iinfo(np.int64).max, ids), keys), axis=1)[:, :k]
    return np.take_along_axis(distances, order, axis=1), np.take_along_axis(ids, order, axis=1)


__all__ = ["MAX_DIM", "AddedRows", "merge"]
