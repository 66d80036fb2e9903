"""Baselines that are not knnserve: scikit-learn's brute k-NN and the float32 GEMM bound (both in a
child process that never imports faiss), and the textbook per-row numpy loop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from knnserve.errors import KnnServeError
from knnserve.evaluate.config import EvaluateConfig
from knnserve.evaluate.runs import BuildCost
from knnserve.evaluate.systems.base import Answer, Description, Modes, Setting
from knnserve.evaluate.workload import Workload

CHILD_SCRIPT = Path(__file__).with_name("child_worker.py")


class ChildBaseline:
    """scikit-learn ``KNeighborsClassifier(algorithm='brute')`` (``task="sklearn"``) or the float32 GEMM
    bound (``task="matmul"``), answered by a child process (``child_worker.py``).

    The child loads the base and the query rows once; a timed call sends it a row range and waits
    for the answer, so what is timed is the child's work plus a round trip of a few bytes.
    """

    modes = Modes(single=False)

    def __init__(self, workload: Workload, config: EvaluateConfig, task: str) -> None:
        if task not in ("sklearn", "matmul"):
            raise ValueError(f"task: expected sklearn or matmul, got {task!r}")
        self.workload = workload
        self.config = config
        self.task = task
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._ready: dict[str, object] = {}

    def open(self) -> None:
        """Write the arrays, start the child and wait until it has fitted."""
        self._folder = tempfile.TemporaryDirectory(prefix="knnserve-baseline-")
        folder = Path(self._folder.name)
        np.save(folder / "xtr.npy", np.ascontiguousarray(self.workload.base, dtype=np.float32), allow_pickle=False)
        np.save(folder / "ytr.npy", self.workload.base_labels, allow_pickle=False)
        np.save(folder / "xq.npy", self.workload.queries_f32(), allow_pickle=False)
        job = {"task": self.task, "k": self.config.vote_k, "weights": self.config.weights, "metric": self.config.metric}
        (folder / "job.json").write_text(json.dumps(job))
        env = dict(os.environ)
        if self.config.threads is not None:
            for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                env[name] = str(self.config.threads)
        # stderr to a file: a child warning a lot must never block on a full pipe nobody reads.
        with (folder / "stderr.txt").open("wb") as stderr:
            self._process = subprocess.Popen(
                [sys.executable, "-P", str(CHILD_SCRIPT), str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=stderr, env=env,
            )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise KnnServeError(f"baseline child ({self.task}) failed: {self._stderr()}")
        self._ready = json.loads(line)

    def _stderr(self) -> str:
        assert self._process is not None and self._folder is not None
        self._process.wait(timeout=30)
        return (Path(self._folder.name) / "stderr.txt").read_text(errors="replace").strip()[-2000:]

    def describe(self) -> Description:
        """scikit-learn or the GEMM bound, with the BLAS the child loaded."""
        blas = ", ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('num_threads')} threads)"
                         for b in self._ready.get("blas", []))  # type: ignore[union-attr]
        if self.task == "sklearn":
            return Description(
                label=f"scikit-learn KNeighborsClassifier(brute, k={self.config.vote_k}, {self.config.weights})",
                system="sklearn",
                transport="child-process",
                exact=True,
                build=BuildCost(0.0, float(self._ready.get("fit_seconds", 0.0)), 0),  # type: ignore[arg-type]
                notes=(f"predict() on float32 rows in a child process that never imports faiss; BLAS: {blas or 'unknown'}",),
            )
        return Description(
            label="float32 GEMM Xq @ Xtr.T (lower bound)",
            system="matmul",
            transport="child-process",
            notes=(f"numpy matrix multiply only, no top-k: the floor of exhaustive L2 search; BLAS: {blas or 'unknown'}",),
        )

    def settings(self) -> list[Setting]:
        """One setting."""
        return [Setting()]

    def prepare(self, queries: np.ndarray) -> np.ndarray:
        """Row numbers: the child holds the rows themselves."""
        return np.arange(queries.shape[0], dtype=np.int64)

    def search(self, rows: np.ndarray, setting: Setting) -> Answer:
        """Ask the child for rows[0]..rows[-1]; predictions (sklearn) or None (matmul)."""
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        process.stdin.write(np.array([rows[0], rows[-1] + 1], dtype="<i8").tobytes())
        process.stdin.flush()
        header = process.stdout.read(8)
        if len(header) < 8:
            raise KnnServeError(f"baseline child ({self.task}) stopped: {self._stderr()}")
        count = int(np.frombuffer(header, dtype="<i8")[0])
        if count == 0:
            return None
        return np.frombuffer(process.stdout.read(8 * count), dtype="<i8").astype(np.int64)

    def finish(self, answer: Answer) -> Answer:
        """Nothing to convert."""
        return answer

    def close(self) -> None:
        """Stop the child and remove its files."""
        if self._process is not None:
            try:
                assert self._process.stdin is not None
                self._process.stdin.write(np.array([-1, -1], dtype="<i8").tobytes())
                self._process.stdin.close()
                self._process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


class NaiveLoop:
    """The textbook per-row numpy 1-NN loop, timed on a subsample of queries; its time for all is extrapolated."""

    def __init__(self, workload: Workload, config: EvaluateConfig) -> None:
        self.workload = workload
        self.config = config
        self.modes = Modes(batch=False, single_queries=config.naive_queries, subsampled=True)
        self._base: np.ndarray | None = None

    def open(self) -> None:
        """The base rows as float32."""
        self._base = self.workload.base.astype(np.float32)

    def describe(self) -> Description:
        """What the loop computes."""
        formula = "np.abs(Xtr - x)" if self.config.metric == "l1" else "(Xtr - x) ** 2"
        rows = min(self.config.naive_queries, self.workload.queries.shape[0])
        return Description(
            label=f"naive numpy loop, 1-NN ({self.config.metric})",
            system="naive",
            transport="in-process",
            notes=(f"np.argmin(np.sum({formula}, axis=1)) per query row, float32, on {rows} of "
                   f"{self.workload.queries.shape[0]} queries; time extrapolated; accuracy is 1-NN on that subsample",),
        )

    def settings(self) -> list[Setting]:
        """One setting."""
        return [Setting()]

    def prepare(self, queries: np.ndarray) -> np.ndarray:
        """float32 rows."""
        return np.ascontiguousarray(queries, dtype=np.float32)

    def search(self, rows: np.ndarray, setting: Setting) -> Answer:
        """The 1-NN label of each row, one row at a time."""
        base = self._base
        assert base is not None
        predictions = np.empty(rows.shape[0], dtype=np.int64)
        for i, row in enumerate(rows):
            distances = np.sum(np.abs(base - row), axis=1) if self.config.metric == "l1" else np.sum((base - row) ** 2, axis=1)
            predictions[i] = self.workload.base_labels[np.argmin(distances)]
        return predictions

    def finish(self, answer: Answer) -> Answer:
        """Nothing to convert."""
        return answer

    def close(self) -> None:
        """Drop the float32 copy."""
        self._base = None


__all__ = ["CHILD_SCRIPT", "ChildBaseline", "NaiveLoop"]
