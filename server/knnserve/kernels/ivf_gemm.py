"""Batched IVF search over uint8 inverted lists: one integer GEMM per list, then a per-query merge.

FAISS scans each (query, list) pair on its own. Here the queries of a batch are grouped by the
lists they probe (the probes come from FAISS's own coarse quantizer, so both scan the same lists),
and each list is searched once for all its queries: one onnxruntime graph gathers those queries
and computes their keys against the list's vectors (u8 x s8 GEMM, exact, as in ``exact_int``).
Keys are packed with the ids as one int64 ``key * 2**32 + id``, so a plain partition keeps each
query's k best of the list — ordered by (distance, id), ties included — in its (query, probe)
slot, and one more partition per query merges the slots.

Why numpy's partition and not ONNX TopK per list: rows are short (one list) and many, and TopK
cost about twice the whole GEMM here (Fashion-MNIST IVF1024, nprobe 16: 0.31 s against 0.20 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from knnserve.kernels.exact_int import MAX_DIM, key_nodes, query_offsets, shifted_base
from knnserve.kernels.onnx_proto import ELEM_TYPES, Node, ValueInfo, model_bytes
from knnserve.kernels.runtime import fan_out, new_session

# A slot no candidate filled: sorts after every real (key, id) and decodes to FAISS's "none found".
_EMPTY = np.int64(np.iinfo(np.int64).max)
# What FAISS returns as the distance of a missing neighbour (id -1) under L2: float32's largest value.
MISSING_DISTANCE = np.float32(np.finfo(np.float32).max)
_ID_BITS = 32


class _List:
    """One inverted list as the GEMM takes it: shifted vectors (d, n_l), their norms and ids."""

    __slots__ = ("ids", "norms", "size", "vectors")

    def __init__(self, codes: np.ndarray, ids: np.ndarray) -> None:
        self.vectors, self.norms = shifted_base(codes)
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.size = int(ids.shape[0])


class IvfGemmInt8:
    """IVF search over uint8 lists for batches: ``search(rows, probes, k)`` with FAISS's probes."""

    name = "ivf-gemm-int8"

    def __init__(self, codes: Sequence[np.ndarray], ids: Sequence[np.ndarray], d: int) -> None:
        if d > MAX_DIM:
            raise ValueError(f"at most {MAX_DIM} dimensions (int32 keys), got {d}")
        if len(codes) != len(ids) or not codes:
            raise ValueError("one (codes, ids) pair per inverted list")
        for list_codes, list_ids in zip(codes, ids):
            if list_codes.dtype != np.uint8 or list_codes.shape != (list_ids.shape[0], d):
                raise ValueError(f"uint8 codes (n_l, {d}) per list, got {list_codes.dtype} {list_codes.shape}")
            if list_ids.size and (list_ids.min() < 0 or list_ids.max() >= 2**_ID_BITS):
                raise ValueError(f"ids between 0 and 2**{_ID_BITS} - 1")
        self.d = d
        self.nlist = len(codes)
        self._lists = [_List(c, i) for c, i in zip(codes, ids)]
        self._sizes = np.array([entry.size for entry in self._lists], dtype=np.int64)
        graph = model_bytes(
            [Node("Gather", ["Q", "QI"], ["A"], {"axis": 0}), *key_nodes(("A", "B")),
             # Packing in the graph, not in numpy: onnxruntime releases the GIL, so threads overlap.
             Node("Cast", ["KEY"], ["KEY64"], {"to": ELEM_TYPES[np.dtype(np.int64)]}),
             Node("Mul", ["KEY64", "SHIFT"], ["SHIFTED"]), Node("Add", ["SHIFTED", "IDS"], ["PACKED"])],
            [ValueInfo("Q", np.uint8, ["n", d]), ValueInfo("QI", np.int64, ["m"]), ValueInfo("B", np.int8, [d, "l"]),
             ValueInfo("NY", np.int32, ["l"]), ValueInfo("IDS", np.int64, ["l"])],
            [ValueInfo("PACKED", np.int64, ["m", "l"])],
            initializers={"SHIFT": np.array(2**_ID_BITS, dtype=np.int64)},
        )
        self._session: Any = new_session(graph)

    def search(self, rows: np.ndarray, probes: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        """Squared L2 distances (float32) and ids of the k nearest among each row's probed lists.

        ``probes`` (n, nprobe) are list numbers as FAISS's coarse quantizer returns them (-1: none).
        Where fewer than k vectors were scanned, ids are -1 and distances float32's largest value.
        """
        if rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != self.d:
            raise ValueError(f"uint8 rows (n, {self.d}), got {rows.dtype} {rows.shape}")
        n, nprobe = probes.shape
        if n != rows.shape[0] or k < 1:
            raise ValueError(f"probes for each of the {rows.shape[0]} rows and k >= 1")
        slots = np.full((n * nprobe, k), _EMPTY, dtype=np.int64)
        flat = probes.ravel()
        order = np.argsort(flat, kind="stable")  # slots grouped by list
        valid = flat >= 0
        counts = np.bincount(flat[valid], minlength=self.nlist)
        # Slots probing no list (-1) sort first; each list's slots follow in list order.
        starts = (flat.size - int(np.count_nonzero(valid))) + np.cumsum(counts) - counts
        busy = np.flatnonzero((counts > 0) & (self._sizes > 0))
        queries = order // nprobe  # the query row of each slot, in list order

        def scan(lists: np.ndarray) -> None:
            for number in lists:
                entry = self._lists[number]
                start, stop = starts[number], starts[number] + counts[number]
                # key * 2**32 + id: ordered by (key, id), negative keys included, since ids < 2**32
                packed = self._session.run(None, {"Q": rows, "QI": queries[start:stop], "B": entry.vectors,
                                                  "NY": entry.norms, "IDS": entry.ids})[0]
                if entry.size > k:
                    packed.partition(k - 1, axis=1)
                    packed = packed[:, :k]
                slots[order[start:stop], : packed.shape[1]] = packed

        fan_out([lambda part=part: scan(part) for part in _balanced(busy, counts * (self._sizes + 16), threads)])
        per_query = slots.reshape(n, nprobe * k)
        best = np.empty((n, k), dtype=np.int64)

        def merge(start: int, stop: int) -> None:
            part = per_query[start:stop]
            if part.shape[1] > k:
                part = np.partition(part, k - 1, axis=1)[:, :k]
            best[start:stop] = np.sort(part, axis=1)

        parts = max(1, min(threads, n))
        fan_out([lambda i=i: merge(n * i // parts, n * (i + 1) // parts) for i in range(parts)])
        missing = best == _EMPTY
        ids = best & np.int64(2**_ID_BITS - 1)
        distances = ((best >> _ID_BITS) + query_offsets(rows)[:, None]).astype(np.float32)
        ids[missing] = -1
        distances[missing] = MISSING_DISTANCE
        return distances, ids


def _balanced(lists: np.ndarray, cost: np.ndarray, parts: int) -> list[np.ndarray]:
    """Split lists into ``parts`` groups of about equal cost (largest first, each to the lightest group)."""
    parts = max(1, min(parts, lists.size))
    if parts == 1:
        return [lists]
    groups: list[list[int]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for number in lists[np.argsort(-cost[lists], kind="stable")]:
        lightest = loads.index(min(loads))
        groups[lightest].append(int(number))
        loads[lightest] += int(cost[number])
    return [np.array(group, dtype=np.int64) for group in groups]


__all__ = ["MISSING_DISTANCE", "IvfGemmInt8"]
