"""Benchmark of the k-NN engine on Fashion-MNIST raw pixels, every figure with its baseline from the same run.

Measures, on the 60k/10k split:
  * knnserve exact Flat (float32, BLAS) classification of the test rows (search + vote), k = 1, 3, 5,
    and the same with raw uint8 storage (SQ8_direct);
  * bare FAISS IndexFlatL2 search of the same rows, and the float32 matrix-multiply lower bound;
  * scikit-learn KNeighborsClassifier(algorithm='brute') in a child process that never imports faiss
    (two OpenMP runtimes in one process slow scikit-learn down, which would flatter knnserve);
  * the textbook per-row numpy loop (L1, 1-NN), on a subsample, extrapolated to all rows;
  * the ivf and hnsw aliases at a few search settings.

Usage: python benchmarks/bench_knn.py [--repeats 3] [--naive-rows 50] [--out benchmarks/results/knn-DATE.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SKLEARN_CHILD = r"""
import json, sys, time
import numpy as np
assert "faiss" not in sys.modules
from sklearn.neighbors import KNeighborsClassifier
folder, k, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
xtr = np.load(folder + "/xtr.npy"); ytr = np.load(folder + "/ytr.npy"); xte = np.load(folder + "/xte.npy")
times = []
for _ in range(repeats):
    start = time.perf_counter()
    clf = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(xtr, ytr)
    pred = clf.predict(xte)
    times.append(time.perf_counter() - start)
assert "faiss" not in sys.modules
np.save(folder + "/sk_pred.npy", pred)
print(json.dumps({"seconds": times}))
"""


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, object]:
    """Median wall time of ``fn`` over ``repeats`` runs after ``warmup`` untimed runs, and its last result."""
    result: object = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def machine() -> str:
    """CPU model, usable cores, Python and the OpenBLAS kernels each loaded BLAS picked, for the result file."""
    from threadpoolctl import threadpool_info

    from knnserve.machine import cpu_model, usable_cores

    blas = ", ".join(f"{Path(i['filepath']).name.split('-')[0]}: {i.get('architecture')}" for i in threadpool_info() if i["user_api"] == "blas")
    return f"{cpu_model()}, {usable_cores()} cores, Python {platform.python_version()}; OpenBLAS kernels {blas}"


def run_sklearn_child(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, k: int, repeats: int) -> tuple[float, np.ndarray]:
    """scikit-learn brute k-NN timed in a fresh interpreter that never imports faiss."""
    with tempfile.TemporaryDirectory() as folder:
        for name, array in (("xtr", xtr), ("ytr", ytr), ("xte", xte)):
            np.save(f"{folder}/{name}.npy", array)
        out = subprocess.run(
            [sys.executable, "-c", SKLEARN_CHILD, folder, str(k), str(repeats)],
            capture_output=True, text=True, check=True,
        )
        seconds = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
        return statistics.median(seconds), np.load(f"{folder}/sk_pred.npy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-rows", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from knnserve.data import load_dataset

    ds = load_dataset("fashion-mnist", download=False)
    xtr = ds.x_train.reshape(len(ds.x_train), -1)
    xte = ds.x_test.reshape(len(ds.x_test), -1)
    ytr, yte = ds.y_train, ds.y_test

    # scikit-learn first, in its own process, before this process loads faiss's OpenMP runtime.
    # It gets float32, its fastest input type (uint8 would be converted to float64).
    sk_seconds, sk_pred = run_sklearn_child(xtr.astype(np.float32), ytr, xte.astype(np.float32), 5, args.repeats)
    sk_acc = float(np.mean(sk_pred == yte))

    from knnserve.estimator import KNNClassifier
    from knnserve.index.backend import build_info, flat_index
    from knnserve.model import KNNModel
    from knnserve_client.wire.query import KnnQuery

    rows: list[tuple[str, str, str, str]] = []

    xtr32, xte32 = xtr.astype(np.float32), xte.astype(np.float32)
    bare = flat_index(xtr32, "l2")  # faiss.IndexFlat, loaded with knnserve's OpenBLAS kernel choice
    bare_seconds, _ = median_seconds(lambda: bare.search(xte32, 5), args.repeats)
    gemm_seconds, _ = median_seconds(lambda: xte32 @ xtr32.T, args.repeats)

    flat = KNNModel.fit(ds.x_train, ytr, class_names=ds.class_names, index="flat")
    for k in (1, 3, 5):
        model = flat.with_defaults(KnnQuery(k=k, tie_break="lowest"))
        seconds, result = median_seconds(lambda: model.classify(ds.x_test), args.repeats)
        acc = float(np.mean(result.predictions == yte))
        rows.append((f"knnserve Flat ({flat.index_info.factory}), k={k}", f"{acc:.2%}", f"{seconds:.2f}", f"{sk_seconds / seconds:.2f}x"))
        if k == 5:
            flat_k5_seconds, flat_k5_pred = seconds, result.predictions

    raw_flat = KNNModel.fit(ds.x_train, ytr, index="flat", storage="uint8").with_defaults(KnnQuery(k=5, tie_break="lowest"))
    seconds, result = median_seconds(lambda: raw_flat.classify(ds.x_test), args.repeats)
    rows.append(("knnserve Flat, storage=uint8 (SQ8_direct, no BLAS), k=5", f"{float(np.mean(result.predictions == yte)):.2%}", f"{seconds:.2f}", f"{sk_seconds / seconds:.2f}x"))
    rows.append(("bare faiss IndexFlatL2 search only, k=5", "", f"{bare_seconds:.2f}", f"{sk_seconds / bare_seconds:.2f}x"))
    rows.append(("float32 matmul 10k x 784 x 60k (lower bound)", "", f"{gemm_seconds:.2f}", f"{sk_seconds / gemm_seconds:.2f}x"))
    rows.append(("scikit-learn brute k=5 (child process, no faiss)", f"{sk_acc:.2%}", f"{sk_seconds:.2f}", "1.00x"))

    # Naive loop: the lecture's L1 nearest neighbour, one test row at a time.
    sample = xte[: args.naive_rows].astype(np.int32)
    xtr_i = xtr.astype(np.int32)
    start = time.perf_counter()
    naive_pred = np.array([ytr[np.argmin(np.sum(np.abs(xtr_i - x), axis=1))] for x in sample])
    per_row = (time.perf_counter() - start) / len(sample)
    naive_total = per_row * len(xte)
    rows.append((f"naive numpy loop, L1 1-NN ({args.naive_rows} rows, extrapolated)", f"{float(np.mean(naive_pred == yte[: len(sample)])):.0%} (on the sample)", f"{naive_total:.1f}", f"{sk_seconds / naive_total:.3f}x"))

    for alias, settings in (("ivf", [("nprobe", 4), ("nprobe", 16), ("nprobe", 64)]), ("hnsw", [("ef_search", 16), ("ef_search", 64), ("ef_search", 128)])):
        clf = KNNClassifier(5, index=alias).fit(ds.x_train, ytr)
        for name, value in settings:
            clf.set_params(**{name: value})
            seconds, pred = median_seconds(lambda: clf.predict(ds.x_test), args.repeats)
            label = f"knnserve {alias} ({clf.model_.index_info.factory}), {name}={value}, k=5"
            rows.append((label, f"{float(np.mean(pred == yte)):.2%}", f"{seconds:.2f}", f"{sk_seconds / seconds:.2f}x"))

    agree = float(np.mean(flat_k5_pred == sk_pred))
    stamp = dt.datetime.now(dt.timezone.utc)
    lines = [
        f"# k-NN engine on Fashion-MNIST raw pixels ({stamp:%Y-%m-%d})",
        "",
        f"- command: `python benchmarks/bench_knn.py --repeats {args.repeats} --naive-rows {args.naive_rows}`",
        f"- machine: {machine()}",
        f"- date: {stamp:%Y-%m-%d %H:%M} UTC; faiss {build_info()['faiss']}, numpy {np.__version__}",
        f"- data: {len(xtr)} train / {len(xte)} test rows, 784 uint8 pixels; times are medians of {args.repeats} runs after a warm-up, classifying all test rows (search + vote) unless noted",
        "",
        "| what | accuracy | seconds | speed vs scikit-learn brute |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        f"knnserve exact Flat k=5 with tie_break='lowest' agrees with scikit-learn on {agree:.2%} of test rows"
        f" ({int(np.sum(flat_k5_pred != sk_pred))} differ); speedup over scikit-learn brute: {sk_seconds / flat_k5_seconds:.2f}x.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = args.out or Path(__file__).parent / "results" / f"knn-{stamp:%Y-%m-%d}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
