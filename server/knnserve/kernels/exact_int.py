"""Exact k-NN over uint8 vectors in integers: one u8 x s8 GEMM and a top-k in one onnxruntime graph.

For x, y in 0..255^d the squared distance ||x||^2 + ||y||^2 - 2 x.y is an exact integer. The base is
stored shifted to int8 (s = y - 128), because onnxruntime's fast integer path multiplies uint8 by
int8; x.y = x.s + 128 * sum(x). Per query row only ``key = ||y||^2 - 2 x.s`` has to be ranked, since
the rest (||x||^2 - 256 sum(x)) is the same for every y. The graph computes the keys and TopK's k
smallest per row, and ONNX TopK breaks ties by the lower index — the lower id, FAISS's rule — so
the neighbours are exactly the true ones, ties included.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from knnserve.kernels.onnx_proto import Node, ValueInfo, model_bytes
from knnserve.kernels.runtime import fan_out, new_session

# Query rows per onnxruntime call. The graph's int32 intermediates are rows x ntotal x 4 bytes (and
# three of them live at once): 128 rows keep that at 90 MiB for 60k vectors while each call is
# still a large GEMM. Measured on Fashion-MNIST 10k x 60k: 128 and 256 rows were equally fast.
CHUNK_ROWS = 128
# |key| <= d * (255^2 + 2 * 255 * 128) must fit in int32.
MAX_DIM = (2**31 - 1) // (255 * 255 + 2 * 255 * 128)
# Base vectors flipped and transposed at a time when the kernel is built (see shifted_base).
SHIFT_BLOCK = 2048


def query_offsets(rows: np.ndarray) -> np.ndarray:
    """||x||^2 - 256 * sum(x) per uint8 row, int64: what turns a key into the squared distance."""
    wide = rows.astype(np.int32)
    return np.einsum("ij,ij->i", wide, wide).astype(np.int64) - 256 * wide.sum(axis=1, dtype=np.int64)


def shifted_base(base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(base - 128 as int8, transposed to (d, n)), and ||y||^2 per vector as int32.

    y - 128 for a byte y is y with its top bit flipped, read as a signed byte: no int32 copy of the
    base is made (60,000 x 784, once, by hand on the shared 2-core machine: 0.50 s with an int32
    copy, 0.09 s this way; a fixed cost of every batch job and server load). The flip is written
    straight into the transposed array, SHIFT_BLOCK rows at a time, so that what is read and what is
    written stay in cache (by hand, busy machine: 0.08 s as a flip then a transposing copy, 0.05 s this way).
    """
    norms = np.einsum("ij,ij->i", base, base, dtype=np.int32)
    n, d = base.shape
    shifted = np.empty((d, n), dtype=np.uint8)
    for start in range(0, n, SHIFT_BLOCK):
        np.bitwise_xor(base[start : start + SHIFT_BLOCK].T, np.uint8(0x80), out=shifted[:, start : start + SHIFT_BLOCK])
    return shifted.view(np.int8), norms


def key_nodes(gemm_inputs: tuple[str, str]) -> list[Node]:
    """MatMulInteger G = A x B, then KEY = NY - 2G (int32): the nodes both kernels share."""
    return [
        Node("MatMulInteger", list(gemm_inputs), ["G"]),
        Node("Add", ["G", "G"], ["G2"]),
        Node("Sub", ["NY", "G2"], ["KEY"]),
    ]


class ExactInt8Flat:
    """Exact L2 k-NN over a fixed uint8 base (n, d); search takes uint8 query rows."""

    name = "exact-int8"

    def __init__(self, base: np.ndarray) -> None:
        if base.dtype != np.uint8 or base.ndim != 2 or base.shape[0] < 1:
            raise ValueError(f"a non-empty uint8 base (n, d), got {base.dtype} {base.shape}")
        if base.shape[1] > MAX_DIM:
            raise ValueError(f"at most {MAX_DIM} dimensions (int32 keys), got {base.shape[1]}")
        self.ntotal, self.d = (int(s) for s in base.shape)
        shifted, norms = shifted_base(base)
        graph = model_bytes(
            [*key_nodes(("A", "B")), Node("TopK", ["KEY", "K"], ["V", "I"], {"axis": 1, "largest": 0, "sorted": 1})],
            [ValueInfo("A", np.uint8, ["n", self.d]), ValueInfo("K", np.int64, [1])],
            [ValueInfo("V", np.int32, ["n", "k"]), ValueInfo("I", np.int64, ["n", "k"])],
            # As initializers the base is constant, so onnxruntime packs it for its GEMM once, here.
            initializers={"B": shifted, "NY": norms},
        )
        self._session: Any = new_session(graph)

    def search(self, rows: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        """Squared L2 distances (float32, as FAISS returns them) and ids (int64) of the k nearest, nearest first."""
        if rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != self.d:
            raise ValueError(f"uint8 rows (n, {self.d}), got {rows.dtype} {rows.shape}")
        if not 1 <= k <= self.ntotal:
            raise ValueError(f"k between 1 and {self.ntotal}, got {k}")
        n = rows.shape[0]
        keys = np.empty((n, k), dtype=np.int32)
        ids = np.empty((n, k), dtype=np.int64)
        kk = np.array([k], dtype=np.int64)
        # Small batches are cut so every thread still gets rows.
        size = max(1, min(CHUNK_ROWS, -(-n // max(threads, 1))))
        starts = list(range(0, n, size))

        def chunks(mine: list[int]) -> None:
            for start in mine:
                stop = min(start + size, n)
                keys[start:stop], ids[start:stop] = self._session.run(None, {"A": rows[start:stop], "K": kk})

        # Interleaved chunks so every thread gets an equal share of rows.
        workers = max(1, min(threads, len(starts)))
        fan_out([lambda mine=starts[w::workers]: chunks(mine) for w in range(workers)])
        distances = keys.astype(np.int64) + query_offsets(rows)[:, None]
        return distances.astype(np.float32), ids


__all__ = ["CHUNK_ROWS", "MAX_DIM", "ExactInt8Flat", "key_nodes", "query_offsets", "shifted_base"]
