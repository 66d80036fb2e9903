"""Benchmark of the search kernels (knnserve.kernels) against FAISS on Fashion-MNIST, baselines in the same run.

Measures, each figure beside its anchor from the same process and the same run (passes interleaved):
  * integer GEMM candidates, 1,024 test rows x 60k train rows x 784: numpy float32 (the anchor),
    onnxruntime MatMulInteger u8 x s8 and u8 x u8, and torch._int_mm s8 x s8 (oneDNN) when torch is
    importable — at 1 and 2 threads, each checked exact against int64;
  * exact k=10 search of the 10k test rows against the 60k train rows: knnserve's exact-int8 kernel vs
    FAISS Flat float32 (the same model with kernel="faiss"), identical ids required;
  * IVF1024 at nprobe 16 and 32 over the 10k test rows, raw-uint8 lists (IVF1024,SQ8_direct, the
    default for uint8 data) and float32 lists (IVF1024,Flat): ivf-gemm-int8 vs FAISS IVF;
  * the thresholds: per-call time of kernel and FAISS for small batches (Flat) and for batches of
    growing size (IVF, as queries per list = rows x nprobe / nlist).

Usage: python benchmarks/bench_kernels.py [--repeats 5] [--out benchmarks/results/kernels-DATE.md] [--sections gemm,flat,ivf,thresholds]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from knnserve.data import load_dataset
from knnserve.index import backend
from knnserve.kernels.onnx_proto import Node, ValueInfo, model_bytes
from knnserve.machine import cpu_flags, cpu_model, usable_cores
from knnserve.model import KNNModel
from knnserve_client.wire.query import KnnQuery

K = 10


def interleaved(calls: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> tuple[dict[str, float], dict[str, object]]:
    """Median seconds of each call over ``repeats`` rounds (one call of each per round, in turn) and its last answer."""
    answers: dict[str, object] = {}
    for _ in range(warmup):
        for name, call in calls.items():
            answers[name] = call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            answers[name] = call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, answers


def gemm_candidates(xtr: np.ndarray, xte: np.ndarray, repeats: int) -> list[str]:
    """Integer GEMM libraries side by side with numpy float32, 1,024 queries x 60k x 784."""
    import onnxruntime

    from threadpoolctl import threadpool_limits

    q, base = xte[:1024], xtr
    ops = 2 * q.shape[0] * base.shape[0] * base.shape[1]
    exact = q[:64].astype(np.int64) @ (base.astype(np.int64) - 128).T
    shifted = np.ascontiguousarray((base.astype(np.int16) - 128).astype(np.int8).T)
    lines = ["| candidate | threads | seconds | GOP/s | vs numpy float32 (same threads) | exact |", "|---|---|---|---|---|---|"]

    def ort_session(b: np.ndarray, threads: int) -> Callable[[], np.ndarray]:
        graph = model_bytes([Node("MatMulInteger", ["A", "B"], ["Y"])], [ValueInfo("A", np.uint8, ["n", b.shape[0]])],
                            [ValueInfo("Y", np.int32, ["n", b.shape[1]])], initializers={"B": b})
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        return lambda: session.run(None, {"A": q})[0]

    torch = None
    if importlib.util.find_spec("torch") is not None:
        import torch  # type: ignore[no-redef]
    for threads in (1, 2):
        calls: dict[str, Callable[[], object]] = {}
        qf, bf = q.astype(np.float32), np.ascontiguousarray(base.astype(np.float32).T)

        def numpy_f32(qf: np.ndarray = qf, bf: np.ndarray = bf, threads: int = threads) -> np.ndarray:
            with threadpool_limits(threads, user_api="blas"):
                return qf @ bf
        calls["numpy float32 matmul"] = numpy_f32
        calls["onnxruntime MatMulInteger u8 x s8"] = ort_session(shifted, threads)
        calls["onnxruntime MatMulInteger u8 x u8"] = ort_session(np.ascontiguousarray(base.T), threads)
        if torch is not None:
            qs = torch.from_numpy((q.astype(np.int16) - 128).astype(np.int8))
            bs = torch.from_numpy(shifted)

            def torch_int(qs: object = qs, bs: object = bs, threads: int = threads) -> np.ndarray:
                torch.set_num_threads(threads)
                return torch._int_mm(qs, bs).numpy()
            calls[f"torch {torch.__version__} _int_mm s8 x s8 (oneDNN)"] = torch_int
        seconds, answers = interleaved(calls, repeats)
        anchor = seconds["numpy float32 matmul"]
        for name, secs in seconds.items():
            got = np.asarray(answers[name])[:64].astype(np.int64)
            if "u8 x u8" in name:
                ok = np.array_equal(got, q[:64].astype(np.int64) @ base.astype(np.int64).T)
            elif "s8 x s8" in name:
                ok = np.array_equal(got, (q[:64].astype(np.int64) - 128) @ (base.astype(np.int64) - 128).T)
            elif "float32" in name:
                ok = np.array_equal(got, exact + 128 * q[:64].astype(np.int64).sum(1, keepdims=True))
            else:
                ok = np.array_equal(got, exact)
            lines.append(f"| {name} | {threads} | {secs:.3f} | {ops / secs / 1e9:.0f} | {anchor / secs:.2f}x | {'yes' if ok else 'NO'} |")
    if torch is None:
        lines.append("\ntorch is not installed in this interpreter: its row is missing (it is no dependency of knnserve).")
    else:
        lines.append(f"\ntorch {torch.__version__} was installed in this interpreter for this comparison only "
                     "(`pip install torch==2.13.0`); knnserve does not depend on it.")
    return lines


def compare(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> str:
    """Rows whose ids are identical (order included) and whose id sets are identical."""
    same_rows = float((a[1] == b[1]).all(axis=1).mean())
    same_sets = float(np.mean([set(x) == set(y) for x, y in zip(a[1].tolist(), b[1].tolist())]))
    return f"{100 * same_rows:.2f}% rows identical, {100 * same_sets:.2f}% sets"


def exact_flat(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, repeats: int) -> list[str]:
    """Exact k=10, 10k x 60k: exact-int8 vs FAISS Flat float32, and the kernel against int64 exact."""
    model = KNNModel.fit(xtr, ytr, index="flat")
    faiss_model = model.with_kernel("faiss")
    rows, query = model.prepare(xte), model.resolve(KnnQuery(k=K))
    seconds, answers = interleaved({"faiss": lambda: faiss_model.search(rows, query),
                                    "kernel": lambda: model.search(rows, query)}, repeats)
    kernel, faiss_answer = answers["kernel"], answers["faiss"]
    assert isinstance(kernel, tuple) and isinstance(faiss_answer, tuple)
    sample = xte[:200].astype(np.int64)
    squared = (sample**2).sum(1)[:, None] + (xtr.astype(np.int64) ** 2).sum(1)[None, :] - 2 * sample @ xtr.T.astype(np.int64)
    truth = np.lexsort((np.broadcast_to(np.arange(xtr.shape[0]), squared.shape), squared), axis=1)[:, :K]
    exact_ok = np.array_equal(truth, kernel[1][:200])
    return [
        "| what | seconds | vs FAISS Flat float32 |", "|---|---|---|",
        f"| FAISS Flat float32 (knnserve, kernel=faiss) | {seconds['faiss']:.3f} | 1.00x |",
        f"| {model.kernel_plan.name} (knnserve, kernel=auto) | {seconds['kernel']:.3f} | **{seconds['faiss'] / seconds['kernel']:.2f}x** |",
        "",
        f"Neighbours: kernel vs FAISS {compare(kernel, faiss_answer)}; kernel vs int64 exact (ties by id) on the first "
        f"200 rows: {'identical' if exact_ok else 'DIFFERENT'}.",
    ]


def ivf(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, repeats: int) -> tuple[list[str], dict[str, KNNModel]]:
    """IVF1024 at nprobe 16 and 32: ivf-gemm-int8 vs FAISS IVF, raw-uint8 and float32 lists."""
    lines = ["| index | nprobe | FAISS IVF s | ivf-gemm-int8 s | speedup | neighbours |", "|---|---|---|---|---|---|"]
    models: dict[str, KNNModel] = {}
    for storage in ("auto", "float32"):
        model = KNNModel.fit(xtr, ytr, index="IVF1024,Flat", storage=storage)
        models[storage] = model
        faiss_model = model.with_kernel("faiss")
        rows = model.prepare(xte)
        for nprobe in (16, 32):
            query = model.resolve(KnnQuery(k=K, nprobe=nprobe))
            seconds, answers = interleaved({"faiss": lambda q=query: faiss_model.search(rows, q),
                                            "kernel": lambda q=query: model.search(rows, q)}, repeats)
            kernel, faiss_answer = answers["kernel"], answers["faiss"]
            assert isinstance(kernel, tuple) and isinstance(faiss_answer, tuple)
            lines.append(f"| {model.index_info.factory} | {nprobe} | {seconds['faiss']:.3f} | {seconds['kernel']:.3f} | "
                         f"**{seconds['faiss'] / seconds['kernel']:.2f}x** | {compare(kernel, faiss_answer)} |")
    return lines, models


def per_call(model: KNNModel, faiss_model: KNNModel, rows: np.ndarray, query: KnnQuery, calls: int) -> tuple[float, float]:
    """Median seconds per call of FAISS and of the kernel on the same rows (kernel forced on by the plan)."""
    seconds, _ = interleaved({"faiss": lambda: faiss_model.search(rows, query), "kernel": lambda: model.search(rows, query)},
                             calls, warmup=2)
    return seconds["faiss"], seconds["kernel"]


def thresholds(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, ivf_model: KNNModel | None) -> list[str]:
    """Per-call times around the thresholds: Flat by batch rows, IVF by queries per list."""
    import knnserve.kernels.choice as choice

    lines = ["Flat (60k x 784, k=10): median per call over 15 calls", "",
             "| rows | FAISS ms | exact-int8 ms | kernel faster |", "|---|---|---|---|"]
    saved = choice.FLAT_MIN_ROWS, choice.IVF_MIN_QUERIES_PER_LIST
    choice.FLAT_MIN_ROWS, choice.IVF_MIN_QUERIES_PER_LIST = 1, 0.0  # plan the kernel for every batch, to time it
    try:
        flat = KNNModel.fit(xtr, ytr, index="flat")
        flat.warm_kernel()
        flat_faiss = flat.with_kernel("faiss")
        for n in (1, 2, 4, 8, 16, 32, 64, 128):
            rows = flat.prepare(xte[:n])
            f, k = per_call(flat, flat_faiss, rows, flat.resolve(KnnQuery(k=K)), 15)
            lines.append(f"| {n} | {1e3 * f:.2f} | {1e3 * k:.2f} | {'yes' if k < f else 'no'} |")
        if ivf_model is None:
            ivf_model = KNNModel.fit(xtr, ytr, index="IVF1024,Flat")
        model = ivf_model.with_kernel("faiss").with_kernel("auto")
        model.warm_kernel()
        model_faiss = model.with_kernel("faiss")
        nlist = model.nlist or 1
        lines += ["", f"IVF ({model.index_info.factory}, k=10): median per call over 7 calls", "",
                  "| rows | nprobe | queries per list | FAISS ms | ivf-gemm-int8 ms | kernel faster |", "|---|---|---|---|---|---|"]
        for nprobe in (16, 32):
            for n in (64, 128, 256, 512, 1024, 2048, 4096):
                rows = model.prepare(xte[:n])
                f, k = per_call(model, model_faiss, rows, model.resolve(KnnQuery(k=K, nprobe=nprobe)), 7)
                lines.append(f"| {n} | {nprobe} | {n * nprobe / nlist:.1f} | {1e3 * f:.2f} | {1e3 * k:.2f} | {'yes' if k < f else 'no'} |")
    finally:
        choice.FLAT_MIN_ROWS, choice.IVF_MIN_QUERIES_PER_LIST = saved
    return lines


def main() -> None:
    """Run every section and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(f"benchmarks/results/kernels-{dt.date.today()}.md"))
    parser.add_argument("--sections", default="gemm,flat,ivf,thresholds", help="comma-separated subset of gemm,flat,ivf,thresholds")
    args = parser.parse_args()
    import onnxruntime

    ds = load_dataset("fashion-mnist")
    xtr, ytr = ds.x_train.reshape(len(ds.x_train), -1), ds.y_train
    xte = ds.x_test.reshape(len(ds.x_test), -1)
    started = dt.datetime.now(dt.timezone.utc)
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx512_vnni", "avx_vnni", "amx")))
    info = backend.build_info()
    sections = [f"# Search kernels vs FAISS on Fashion-MNIST ({started:%Y-%m-%d})", "",
                f"- command: `python benchmarks/bench_kernels.py --repeats {args.repeats} --sections {args.sections}` "
                "(under `flock /work/bench.lock`)",
                f"- machine: {cpu_model()}, {usable_cores()} cores (integer-dot flags: {', '.join(flags) or 'none'}), "
                f"Python {platform.python_version()}",
                f"- date: {started:%Y-%m-%d %H:%M} UTC; faiss {info['faiss']}, onnxruntime {onnxruntime.__version__}, "
                f"numpy {np.__version__}; FAISS threads {backend.omp_threads()}",
                f"- times: medians of {args.repeats} interleaved passes after a warm-up (kernel and anchor alternate), "
                "all threads; the machine is shared, so only ratios from the same run are compared", ""]
    wanted = set(args.sections.split(","))
    if "gemm" in wanted:
        sections += ["## Integer GEMM candidates (1,024 x 60,000 x 784)", ""] + gemm_candidates(xtr, xte, args.repeats) + [""]
    if "flat" in wanted:
        sections += ["## Exact k=10, 10,000 x 60,000 uint8", ""] + exact_flat(xtr, ytr, xte, args.repeats) + [""]
    models: dict[str, KNNModel] = {}
    if "ivf" in wanted:
        ivf_lines, models = ivf(xtr, ytr, xte, args.repeats)
        sections += ["## IVF1024, 10,000 queries, k=10", ""] + ivf_lines + [""]
    if "thresholds" in wanted:
        sections += ["## Thresholds", ""] + thresholds(xtr, ytr, xte, models.get("auto")) + [""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(sections))
    print("\n".join(sections))


if __name__ == "__main__":
    main()
