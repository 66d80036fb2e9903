"""Baselines measured in the same run: bare FAISS IndexFlat, scikit-learn brute k-NN, the naive numpy loop, the GEMM bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from knnserve.errors import KnnServeError
from knnserve.evaluate.config import EvaluateConfig
from knnserve.evaluate.measure import measure_search
from knnserve.evaluate.runs import BuildCost, RunOutput
from knnserve.evaluate.timing import BatchTiming, time_single
from knnserve.evaluate.workload import Workload
from knnserve.index import as_float32_rows, serialized_size
from knnserve.model import true_distances

CHILD_SCRIPT = Path(__file__).with_name("sklearn_child.py")
_METRIC_TYPES = {"l2": faiss.METRIC_L2, "l1": faiss.METRIC_L1}


def bare_faiss(workload: Workload, config: EvaluateConfig) -> RunOutput:
    """``faiss.IndexFlat`` (float32, same metric) searched directly: the yardstick of the harness's own overhead."""
    started = time.perf_counter()
    index = faiss.IndexFlat(workload.dim, _METRIC_TYPES[config.metric])
    index.add(as_float32_rows(workload.base, workload.dim, field="base"))
    added = time.perf_counter() - started
    measured = measure_search(
        lambda rows: index.search(rows, config.search_k),
        workload.queries_f32(),
        modes=config.timed_modes,
        single_rows=workload.single_rows(config.exact_single_queries),
        repeats=config.repeats,
        max_seconds=config.max_run_seconds,
        threads=config.threads,
        progress=config.progress,
        desc="bare faiss IndexFlat",
    )
    return RunOutput(
        label=f"bare faiss IndexFlat{'L2' if config.metric == 'l2' else ''} (float32)",
        system="faiss",
        transport="in-process",
        index={"spec": "faiss.IndexFlat", "factory": "Flat", "storage": "float32", "kind": "flat", "metric": config.metric},
        exact=True,
        build=BuildCost(0.0, added, serialized_size(index)),
        ids=measured.ids,
        distances=true_distances(measured.distances, config.metric),
        batch=measured.batch,
        single=measured.single,
        notes=("index.search() called directly on float32 rows: no validation, no knnserve code",),
    )


def naive_loop(workload: Workload, config: EvaluateConfig) -> RunOutput:
    """The textbook per-row numpy 1-NN loop on a subsample of queries, its time extrapolated to all of them."""
    base = workload.base.astype(np.float32)
    queries = workload.queries_f32()
    rows = workload.single_rows(config.naive_queries)
    predictions: dict[int, int] = {}

    def one(row: int) -> None:
        if config.metric == "l1":
            distances = np.sum(np.abs(base - queries[row]), axis=1)
        else:
            distances = np.sum((base - queries[row]) ** 2, axis=1)
        predictions[row] = int(workload.base_labels[np.argmin(distances)])

    timing = time_single(one, rows, repeats=1, max_seconds=config.max_run_seconds, warmup_rows=1,
                         progress=config.progress, desc="naive numpy loop")
    formula = "np.abs(Xtr - x)" if config.metric == "l1" else "(Xtr - x) ** 2"
    return RunOutput(
        label=f"naive numpy loop, 1-NN ({config.metric})",
        system="naive",
        transport="in-process",
        predictions=np.array([predictions[int(r)] for r in rows], dtype=np.int64),
        prediction_rows=rows,
        single=timing,
        extrapolated_seconds=timing.latencies.mean() * workload.queries.shape[0],
        notes=(
            f"np.argmin(np.sum({formula}, axis=1)) per query row, float32, on {rows.size} of "
            f"{workload.queries.shape[0]} queries; time extrapolated; accuracy is 1-NN on that subsample",
        ),
    )


def _child_env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    if threads is not None:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    return env


def child_baselines(workload: Workload, config: EvaluateConfig, tasks: tuple[str, ...]) -> list[RunOutput]:
    """scikit-learn ``KNeighborsClassifier(algorithm='brute')`` and/or the float32 GEMM bound, in a child without faiss."""
    if not tasks:
        return []
    with tempfile.TemporaryDirectory(prefix="knnserve-baseline-") as folder:
        job_dir = Path(folder)
        np.save(job_dir / "xtr.npy", np.ascontiguousarray(workload.base, dtype=np.float32), allow_pickle=False)
        np.save(job_dir / "ytr.npy", workload.base_labels, allow_pickle=False)
        np.save(job_dir / "xte.npy", workload.queries_f32(), allow_pickle=False)
        job = {"tasks": list(tasks), "k": config.vote_k, "weights": config.weights, "metric": config.metric,
               "repeats": config.repeats, "max_seconds": config.max_run_seconds}
        (job_dir / "job.json").write_text(json.dumps(job))
        done = subprocess.run([sys.executable, "-P", str(CHILD_SCRIPT), str(job_dir)], env=_child_env(config.threads),
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise KnnServeError(f"baseline child process failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        result = json.loads((job_dir / "result.json").read_text())
        sk_pred = np.load(job_dir / "sk_pred.npy", allow_pickle=False) if "sklearn" in tasks else None
    blas = ", ".join(f"{b.get('internal_api')} {b.get('version')} ({b.get('num_threads')} threads)" for b in result["blas"])
    runs: list[RunOutput] = []
    n = workload.queries.shape[0]
    if "sklearn" in tasks:
        sk = result["sklearn"]
        runs.append(RunOutput(
            label=f"scikit-learn KNeighborsClassifier(brute, k={config.vote_k}, {config.weights})",
            system="sklearn",
            transport="child-process",
            exact=True,
            build=BuildCost(0.0, float(sk["fit_seconds"][0]), 0),
            predictions=sk_pred,
            prediction_rows=np.arange(n),
            batch=BatchTiming(queries=n, seconds=tuple(sk["predict_seconds"])),
            notes=(f"predict() on float32 rows in a child process that never imports faiss; BLAS: {blas or 'unknown'}",),
        ))
    if "matmul" in tasks:
        runs.append(RunOutput(
            label="float32 GEMM Xq @ Xtr.T (lower bound)",
            system="matmul",
            transport="child-process",
            batch=BatchTiming(queries=n, seconds=tuple(result["matmul"]["seconds"])),
            notes=(f"numpy matrix multiply only, no top-k: the floor of exhaustive L2 search; BLAS: {blas or 'unknown'}",),
        ))
    return runs

