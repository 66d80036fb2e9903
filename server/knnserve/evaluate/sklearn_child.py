"""Child-process baselines: scikit-learn brute k-NN and the float32 matrix-multiply bound, never importing faiss.

Run as a script (``python -P sklearn_child.py JOB_DIR``), not imported: FAISS's OpenMP runtime in the
same process slowed scikit-learn's brute search 2x, which would flatter knnserve. ``JOB_DIR`` holds
``job.json`` and ``xtr.npy``, ``ytr.npy``, ``xte.npy``; the child writes ``result.json`` and
``sk_pred.npy`` there.
"""

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

GEMM_BLOCK_ROWS = 4096


def _timed(fn: Callable[[], Any], repeats: int, max_seconds: float) -> tuple[list[float], Any]:
    """Run ``fn`` up to ``repeats`` times, starting no run once ``max_seconds`` are spent; times and last result."""
    seconds: list[float] = []
    result = None
    while len(seconds) < repeats and (not seconds or sum(seconds) < max_seconds):
        started = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - started)
    return seconds, result


def _sklearn(job: dict[str, Any], xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, folder: Path) -> dict[str, Any]:
    """Fit once, warm up, time ``predict`` over all queries; saves the predictions."""
    from sklearn.neighbors import KNeighborsClassifier

    metric = {"l2": "euclidean", "l1": "manhattan"}[job["metric"]]

    def fit() -> Any:
        return KNeighborsClassifier(
            n_neighbors=job["k"], weights=job["weights"], algorithm="brute", metric=metric
        ).fit(xtr, ytr)

    fit_seconds, model = _timed(fit, 1, 0.0)
    model.predict(xte[: min(64, xte.shape[0])])  # warm-up
    predict_seconds, predictions = _timed(lambda: model.predict(xte), job["repeats"], job["max_seconds"])
    np.save(folder / "sk_pred.npy", np.asarray(predictions, dtype=np.int64), allow_pickle=False)
    return {"fit_seconds": fit_seconds, "predict_seconds": predict_seconds}


def _matmul(job: dict[str, Any], xtr: np.ndarray, xte: np.ndarray) -> dict[str, Any]:
    """Time the float32 GEMM of every query block against all base rows."""
    # The O(N d) work every exhaustive L2 search must do, as one float32 GEMM (no top-k selection).
    def gemm() -> None:
        for start in range(0, xte.shape[0], GEMM_BLOCK_ROWS):
            xte[start : start + GEMM_BLOCK_ROWS] @ xtr.T

    gemm()
    seconds, _ = _timed(gemm, job["repeats"], job["max_seconds"])
    return {"seconds": seconds}


def _blas() -> list[dict[str, Any]]:
    """The BLAS / OpenMP libraries this process loaded, for the report."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [
        {key: info.get(key) for key in ("internal_api", "version", "num_threads", "architecture")}
        for info in threadpool_info()
    ]


def main(job_dir: str) -> None:
    """Run the job in ``job_dir`` and write its result there."""
    folder = Path(job_dir)
    assert "faiss" not in sys.modules, "the baseline child must not import faiss"
    job = json.loads((folder / "job.json").read_text())
    xtr = np.load(folder / "xtr.npy", allow_pickle=False)
    ytr = np.load(folder / "ytr.npy", allow_pickle=False)
    xte = np.load(folder / "xte.npy", allow_pickle=False)
    result: dict[str, Any] = {}
    if "sklearn" in job["tasks"]:
        result["sklearn"] = _sklearn(job, xtr, ytr, xte, folder)
    if "matmul" in job["tasks"]:
        result["matmul"] = _matmul(job, xtr, xte)
    result["blas"] = _blas()
    result["faiss_imported"] = "faiss" in sys.modules
    assert not result["faiss_imported"], "the baseline child must not import faiss"
    (folder / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
