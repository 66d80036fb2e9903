"""The child process of the scikit-learn and GEMM baselines: it never imports faiss.

Run as a script (``python -P child_worker.py JOB_DIR``), not imported: FAISS's OpenMP runtime in
the same process slowed scikit-learn's brute search 2x, which would flatter knnserve. ``JOB_DIR``
holds ``job.json`` (``task``: ``sklearn`` or ``matmul``; ``k``, ``weights``, ``metric``) and
``xtr.npy``, ``ytr.npy``, ``xq.npy`` (float32 base, labels, queries; read with
``allow_pickle=False``).

Protocol on stdin/stdout (binary): after fitting, the child writes one JSON line (``fit_seconds``,
``blas``); then for each request of two little-endian int64 (start, stop) it answers rows
``xq[start:stop]`` and writes an int64 count followed by that many int64 predictions (``sklearn``)
or a count of 0 (``matmul``: the GEMM of those rows against every base row, nothing returned). A
request of (-1, -1) ends the child. Only row numbers cross the pipe, never the query rows, so the
parent's timing holds the child's work and a round trip of a few bytes.
"""

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

GEMM_BLOCK_ROWS = 4096
_METRICS = {"l2": "euclidean", "l1": "manhattan"}  # knnserve's metric names in scikit-learn's words


def _blas() -> list[dict[str, Any]]:
    """The BLAS / OpenMP libraries this process loaded, for the report."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{key: info.get(key) for key in ("internal_api", "version", "num_threads", "architecture")} for info in threadpool_info()]


def _answer(job: dict[str, Any], xtr: np.ndarray, ytr: np.ndarray) -> tuple[Any, float]:
    """The function that answers a block of query rows, and the seconds its setup (fit) took."""
    if job["task"] == "sklearn":
        from sklearn.neighbors import KNeighborsClassifier

        started = time.perf_counter()
        model = KNeighborsClassifier(
            n_neighbors=job["k"], weights=job["weights"], algorithm="brute", metric=_METRICS[job["metric"]]
        ).fit(xtr, ytr)
        fit_seconds = time.perf_counter() - started
        return (lambda rows: np.asarray(model.predict(rows), dtype=np.int64)), fit_seconds

    def gemm(rows: np.ndarray) -> np.ndarray:
        # The O(N d) work every exhaustive L2 search must do, as one float32 GEMM (no top-k selection).
        for start in range(0, rows.shape[0], GEMM_BLOCK_ROWS):
            rows[start : start + GEMM_BLOCK_ROWS] @ xtr.T
        return np.empty(0, dtype=np.int64)

    return gemm, 0.0


def main(job_dir: str) -> None:
    """Fit, report, then answer row ranges until told to stop."""
    folder = Path(job_dir)
    job = json.loads((folder / "job.json").read_text())
    xtr = np.load(folder / "xtr.npy", allow_pickle=False)
    ytr = np.load(folder / "ytr.npy", allow_pickle=False)
    xq = np.load(folder / "xq.npy", allow_pickle=False)
    answer, fit_seconds = _answer(job, xtr, ytr)
    assert "faiss" not in sys.modules, "the baseline child must not import faiss"
    out, requests = sys.stdout.buffer, sys.stdin.buffer
    out.write((json.dumps({"fit_seconds": fit_seconds, "blas": _blas(), "faiss_imported": "faiss" in sys.modules}) + "\n").encode())
    out.flush()
    while True:
        header = requests.read(16)
        if len(header) < 16:
            return
        start, stop = np.frombuffer(header, dtype="<i8")
        if start < 0:
            return
        result = answer(xq[start:stop])
        out.write(np.int64(result.size).astype("<i8").tobytes() + result.astype("<i8").tobytes())
        out.flush()


if __name__ == "__main__":
    main(sys.argv[1])
