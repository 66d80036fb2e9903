"""Benchmark of learned features (issue #7's target table) on Fashion-MNIST, every figure from one run.

Measures, with the baselines from the same run:
  * the whole extractor training (``knnserve train --features cnn``'s network: wall and CPU seconds,
    epochs, seconds per epoch) and the CNN's own softmax test accuracy;
  * exact k-NN on the embedding, its configuration (k, weighting, L2 or cosine) chosen on the
    validation rows; beside it pixel k-NN (raw L2, k=5) and PCA-128 + cosine (k=5, distance), exact;
  * the linear head (softmax, lr and λ chosen on validation) on the embedding: test accuracy, fit seconds;
  * HNSW32 (efConstruction 200) on the embedding at efSearch 32: recall@10 against exact Flat on the
    embedding, batch speed against Flat batch, k-NN accuracy against Flat's;
  * extraction of all 70k images with onnxruntime (2 threads), beside torch's on the same network;
  * one-image extraction p50 (onnxruntime, beside torch);
  * Classify of one raw image over gRPC with a CNN + HNSW bundle (server in a child process, client
    here), p50/p99, beside a pixel HNSW bundle served the same way;
  * ONNX against torch: the parity check's figures (validation rows) and the same on the test split.

The machine is shared: the load average is recorded at each step beside the timings, and the CPU
seconds the training actually got beside its wall time. Run it under the shared lock:

    flock /tmp/knnserve-bench.lock .venv/bin/python benchmarks/bench_features.py --out benchmarks/results/features-DATE.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def machine() -> str:
    from knnserve.machine import cpu_model, usable_cores

    return f"{cpu_model()}, {usable_cores()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def time_single(call: Any, rows: np.ndarray, n: int, warmup: int = 20) -> dict[str, float]:
    for i in range(warmup):
        call(rows[i : i + 1])
    seconds = []
    for i in range(n):
        started = time.perf_counter()
        call(rows[i % len(rows) : i % len(rows) + 1])
        seconds.append(time.perf_counter() - started)
    return percentiles(seconds)


def serve_and_classify(models: Path, name: str, images: np.ndarray, n: int) -> dict[str, float]:
    """Start `knnserve serve` on models/ in a child process; classify one raw image a call from here."""
    from knnserve_client import Client

    port_file = Path(tempfile.mkdtemp()) / "port"
    script = (
        "import sys, signal, threading\n"
        "from pathlib import Path\n"
        "from knnserve.service.config import ServeConfig\n"
        "from knnserve.service.server import KnnServer\n"
        f"server = KnnServer(ServeConfig(models_dir=Path({str(models)!r}), port=0, grace_s=1.0))\n"
        "port = server.start(); server.load_models()\n"
        f"Path({str(port_file)!r}).write_text(str(port))\n"
        "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules), 'torch imported'\n"
        "sys.stdin.read()\n"
        "server.stop(0)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.1)
        target = f"127.0.0.1:{port_file.read_text()}"
        with Client(target, timeout=30) as client:
            client.model(name)
            return time_single(lambda row: client.classify(name, row, heads=("knn",), top_n=0), images, n)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default=None, help="cnn architecture (default: knnserve's default)")
    parser.add_argument("--epochs", type=int, default=None, help="most epochs (default: knnserve's default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the training (default: 0)")
    parser.add_argument("--precision", default=None, help="auto, bf16 or fp32 (default: knnserve's default)")
    parser.add_argument("--head", default=None, help="training head: linear or cosine (default: knnserve's default)")
    parser.add_argument("--label-smoothing", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--max-lr", type=float, default=None)
    parser.add_argument("--margin", type=float, default=None, help="additive cosine margin of the cosine head")
    parser.add_argument("--dropout", type=float, default=None, help="dropout before the embedding layer")
    parser.add_argument("--head-dropout", type=float, default=None, help="dropout between the embedding and the class scores")
    parser.add_argument("--quick", action="store_true",
                        help="stop after the pipeline (network, k-NN, linear head, test): no baselines, HNSW, timings or gRPC")
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads (default: 2)")
    parser.add_argument("--single", type=int, default=2000, help="one-image calls timed (default: 2000)")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--data-dir", type=Path, default=None, help="a folder with the dataset (e.g. CIFAR-10's binary batches)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the bundles in this folder")
    parser.add_argument("--out", type=Path, required=True, help="markdown report; a .json with the same stem beside it")
    args = parser.parse_args()

    from knnserve.training import require_torch

    torch = require_torch()  # OMP_WAIT_POLICY=PASSIVE first, as knnserve train does
    from knnserve.data import load_dataset
    from knnserve.index import set_num_threads
    from knnserve.model import KNNModel
    from knnserve.train import FeaturesConfig, KnnConfig, LinearConfig, save_trained, train_model
    from knnserve.training.cnn import embed, to_nchw
    from knnserve.training.config import DEFAULT_ARCH, CnnConfig
    from knnserve_client.wire.query import KnnQuery

    overrides = {name: value for name, value in (
        ("epochs", args.epochs), ("precision", args.precision), ("head", args.head), ("label_smoothing", args.label_smoothing),
        ("batch_size", args.batch_size), ("max_lr", args.max_lr), ("margin", args.margin), ("dropout", args.dropout),
        ("head_dropout", args.head_dropout)) if value is not None}
    cnn_config = CnnConfig(threads=args.threads, seed=args.seed, **overrides)
    args.arch = args.arch or DEFAULT_ARCH

    set_num_threads(args.threads)
    started_at = dt.datetime.now(dt.timezone.utc)
    out: dict[str, Any] = {"command": " ".join(sys.argv), "machine": machine(), "date": started_at.strftime("%Y-%m-%d %H:%M UTC"),
                           "load_start": load(), "torch": torch.__version__}
    import onnxruntime

    out["onnxruntime"] = onnxruntime.__version__
    data = load_dataset(None if args.data_dir else args.dataset, data_dir=args.data_dir, download=False)
    out["dataset"] = f"{data.name}: {len(data.y_train)} train / {len(data.y_test)} test, {data.image_shape} {data.x_train.dtype}"
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-features-"))

    # 1. the whole pipeline on learned features (network, export + parity, k-NN on validation, linear head)
    print("training the CNN bundle ...", flush=True)
    began = time.perf_counter()
    result = train_model(
        data, KnnConfig(index="flat", choose_k=True, preprocess="auto"), LinearConfig("softmax"),
        features=FeaturesConfig(f"cnn:{args.arch}", cnn_config, seed=args.seed, extractor_threads=args.threads),
        progress=True,
    )
    out["pipeline_seconds"] = time.perf_counter() - began
    m = result.metrics
    model = result.model
    assert model.extractor is not None
    training = model.extractor.record.training
    out["training"] = {
        "seconds": m["cnn_train_seconds"], "cpu_seconds": m["cnn_cpu_seconds"], "epochs_run": m["cnn_epochs_run"],
        "best_epoch": m["cnn_best_epoch"], "val_accuracy": m["cnn_val_accuracy"], "threads": training["threads"],
        "parameters": training["parameters"], "precision": training["precision"], "config": training["config"],
        "per_epoch_seconds": [h["seconds"] for h in training["history"]],
        "history": training["history"], "load_after": load(),
    }
    out["cnn_test_accuracy"] = m["cnn_test_accuracy"]
    out["knn"] = {"test_accuracy": m["knn_test_accuracy"], "chosen": m["knn_validation"]["best"],
                  "preprocess": m["knn_preprocess"], "minus_cnn_softmax": m["knn_test_accuracy"] - m["cnn_test_accuracy"]}
    search = m["linear_search"]
    out["linear"] = {"test_accuracy": m["linear_test_accuracy"], "fit_seconds": m["linear_seconds"],
                     "chosen": search.get("best_params", search.get("choice")),
                     "val_accuracy": search["table"][search["best_index"]]["val_accuracy"] if "table" in search else None}
    out["parity"] = model.extractor.record.parity.model_dump()  # type: ignore[union-attr]
    out["export_seconds"] = m["onnx_export_seconds"]
    save_trained(result, data, folder / "cnn-flat" / "fm-cnn" / "1", name="fm-cnn", overwrite=True)
    print(json.dumps({k: out[k] for k in ("cnn_test_accuracy", "knn", "linear")}, default=str), flush=True)
    if args.quick:
        out["load_end"] = load()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(out, indent=2, default=str) + "\n")
        args.out.write_text(quick_report(out, args))
        print(f"wrote {args.out}")
        return 0

    # 2. baselines from the same run: pixel k-NN, PCA-128 + cosine (exact, k=5)
    for label, preprocess, weights in (("pixels (raw L2, k=5)", None, "uniform"), ("PCA-128 + cosine (k=5, distance)", "pca:128+cosine", "distance")):
        from knnserve.features.knn_spec import parse_knn_preprocess

        pixel = KNNModel.fit(data.x_train, data.y_train, class_names=data.class_names, index="flat",
                             preprocess=parse_knn_preprocess(preprocess) if preprocess else None,
                             defaults=KnnQuery(k=5, weights=weights))
        out.setdefault("pixel_baselines", {})[label] = float(np.mean(pixel.classify(data.x_test).predictions == data.y_test))
    print(json.dumps(out["pixel_baselines"]), flush=True)

    # 3. HNSW32 on the embedding vs exact Flat on the embedding
    extractor = model.extractor
    train_rows = np.ascontiguousarray(data.x_train.reshape(len(data.x_train), -1), dtype=np.float32)
    test_rows = np.ascontiguousarray(data.x_test.reshape(len(data.x_test), -1), dtype=np.float32)
    train_features = extractor(train_rows, data.image_shape)
    test_features = extractor(test_rows, data.image_shape)
    chosen = model.defaults
    hnsw = KNNModel.fit(data.x_train, data.y_train, class_names=data.class_names, index="HNSW32",
                        preprocess=model.preprocessor.config if model.preprocessor is not None else None,
                        defaults=chosen.replace(ef_search=32), extractor=extractor, features=train_features)
    vectors = model.vectors(model.prepare(data.x_test)) if model.preprocessor is not None else test_features
    # searched at k = max(10, the chosen k): recall@10 on the first 10 columns, the vote at the chosen k
    search_k = max(10, chosen.k or 10)
    k10_flat = model.resolve(chosen.replace(k=search_k))
    k10_hnsw = hnsw.resolve(chosen.replace(k=search_k, ef_search=32))
    flat_times, hnsw_times = [], []
    for _ in range(3):  # alternate, so load from other processes falls on both
        began = time.perf_counter()
        flat_d, flat_i = model.search_vectors(vectors, k10_flat)
        flat_times.append(time.perf_counter() - began)
        began = time.perf_counter()
        hnsw_d, hnsw_i = hnsw.search_vectors(vectors, k10_hnsw)
        hnsw_times.append(time.perf_counter() - began)
    kth = flat_d[:, 9:10] + 1e-4
    recall = float(np.mean(np.sum(hnsw_d[:, :10] <= kth, axis=1).clip(max=10)) / 10)
    recall_ids = float(np.mean([len(set(a[:10]) & set(b[:10])) / 10 for a, b in zip(flat_i, hnsw_i)]))
    acc_flat = float(np.mean(model.vote(flat_d, flat_i, model.resolve()).predictions == data.y_test))
    acc_hnsw = float(np.mean(hnsw.vote(hnsw_d, hnsw_i, hnsw.resolve(chosen.replace(ef_search=32))).predictions == data.y_test))
    # Flat as FAISS searches it by default (no BLAS below 128,000 query rows; knnserve lowers that to 8
    # rows): the yardstick a bare-faiss measurement gets.
    from knnserve.index import backend

    threshold = backend.blas_threshold()
    backend.set_blas_threshold(128_000)
    try:
        began = time.perf_counter()
        model.search_vectors(vectors, k10_flat)
        flat_no_blas = time.perf_counter() - began
    finally:
        backend.set_blas_threshold(threshold)
    # one query a call, one FAISS thread (ann-benchmarks' mode)
    with backend.num_threads(1):
        flat_one = time_single(lambda row: model.search_vectors(row, k10_flat), vectors, 300, warmup=5)
        hnsw_one = time_single(lambda row: hnsw.search_vectors(row, k10_hnsw), vectors, 3000)
    out["hnsw"] = {"recall_at_10": recall, "recall_ids": recall_ids, "flat_batch_s": float(np.median(flat_times)),
                   "hnsw_batch_s": float(np.median(hnsw_times)), "speedup": float(np.median(flat_times) / np.median(hnsw_times)),
                   "flat_batch_no_blas_s": flat_no_blas, "speedup_vs_no_blas": flat_no_blas / float(np.median(hnsw_times)),
                   "flat_one_p50_ms": flat_one["p50_ms"], "hnsw_one_p50_ms": hnsw_one["p50_ms"],
                   "speedup_one": flat_one["p50_ms"] / hnsw_one["p50_ms"],
                   "knn_accuracy_flat": acc_flat, "knn_accuracy_hnsw": acc_hnsw, "build_s": hnsw.index_info.add_seconds,
                   "load": load()}
    hnsw.save(folder / "cnn-hnsw" / "fm-cnn-hnsw" / "1", name="fm-cnn-hnsw", overwrite=True)
    print(json.dumps(out["hnsw"]), flush=True)

    # 4. extraction of all 70k images, onnxruntime vs torch (same network, same threads)
    all_rows = np.concatenate([train_rows, test_rows])
    shape = data.image_shape
    ort_times, ort_cores = [], []
    for _ in range(3):
        began, cpu = time.perf_counter(), time.process_time()
        extractor(all_rows, shape)
        ort_times.append(time.perf_counter() - began)
        ort_cores.append((time.process_time() - cpu) / ort_times[-1])
    net = result.network  # the torch network the graph was exported from
    torch.set_num_threads(args.threads)
    images = to_nchw(np.concatenate([data.x_train, data.x_test]))
    began, cpu = time.perf_counter(), time.process_time()
    embed(net, images, batch=256)
    torch_all = time.perf_counter() - began
    torch_cores = (time.process_time() - cpu) / torch_all
    out["extract_all"] = {"images": len(all_rows), "onnxruntime_s": float(np.median(ort_times)), "torch_s": torch_all,
                          "onnxruntime_images_per_s": len(all_rows) / float(np.median(ort_times)),
                          "torch_images_per_s": len(all_rows) / torch_all, "load": load(),
                          "onnxruntime_cores_used": float(np.median(ort_cores)), "torch_cores_used": torch_cores}
    test_torch = embed(net, to_nchw(data.x_test))
    out["parity_test"] = {"rows": len(test_rows), "max_abs_diff": float(np.abs(test_torch - test_features).max())}
    flat_torch = model.search_vectors(
        model.preprocessor.transform(test_torch) if model.preprocessor is not None else test_torch, model.resolve())
    torch_pred = model.vote(*flat_torch, model.resolve()).predictions
    onnx_pred = model.vote(*model.search_vectors(vectors, model.resolve()), model.resolve()).predictions
    out["parity_test"]["knn_disagreements"] = int(np.sum(torch_pred != onnx_pred))
    print(json.dumps(out["extract_all"]), flush=True)

    # 5. one-image extraction
    out["extract_one"] = {
        "onnxruntime": time_single(lambda row: extractor(row, shape), test_rows, args.single),
        "torch": time_single(lambda row: embed(net, to_nchw(row.reshape(1, *shape))), test_rows, min(args.single, 1000)),
        "load": load(),
    }
    print(json.dumps(out["extract_one"]), flush=True)

    # 6. Classify of one raw image over gRPC: CNN + HNSW bundle, and a pixel HNSW bundle as the baseline
    pixel_hnsw = KNNModel.fit(data.x_train, data.y_train, class_names=data.class_names, index="HNSW32",
                              defaults=KnnQuery(k=5, ef_search=32))
    pixel_hnsw.save(folder / "pixel-hnsw" / "fm-pixels-hnsw" / "1", name="fm-pixels-hnsw", overwrite=True)
    out["grpc_classify_one"] = {
        "cnn_hnsw": serve_and_classify(folder / "cnn-hnsw", "fm-cnn-hnsw", data.x_test, args.single),
        "pixel_hnsw": serve_and_classify(folder / "pixel-hnsw", "fm-pixels-hnsw", data.x_test, args.single),
        "load": load(),
    }
    print(json.dumps(out["grpc_classify_one"]), flush=True)
    out["load_end"] = load()
    out["bundles"] = str(folder)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    args.out.write_text(report(out, args))
    print(f"wrote {args.out}")
    return 0


def quick_report(o: dict[str, Any], args: argparse.Namespace) -> str:
    """The pipeline's figures only (``--quick``)."""
    t, k, lin = o["training"], o["knn"], o["linear"]
    return "\n".join([
        f"# Learned features, pipeline only ({o['date']})", "",
        f"- command: `{o['command']}`",
        f"- machine: {o['machine']}; torch {o['torch']}, onnxruntime {o['onnxruntime']}",
        f"- load average (1/5/15 min): start {o['load_start']}, after training {t['load_after']}, end {o['load_end']}",
        f"- network: cnn:{args.arch}, {t['parameters']} parameters, {t['precision']}, config {t['config']}",
        f"- training {t['seconds']:.0f} s ({t['epochs_run']} epochs, best {t['best_epoch']}, {t['cpu_seconds']:.0f} CPU s); "
        f"whole pipeline {o['pipeline_seconds']:.0f} s",
        f"- validation: network {t['val_accuracy']:.2%}, k-NN {k['chosen']['mean']:.2%} (k={k['chosen']['k']}, "
        f"{k['chosen']['weights']}, {k['preprocess']}), linear {lin['val_accuracy']:.2%}",
        f"- test: network softmax {o['cnn_test_accuracy']:.2%}, k-NN {k['test_accuracy']:.2%} "
        f"({k['minus_cnn_softmax'] * 100:+.2f} pt), linear head {lin['test_accuracy']:.2%}",
        "",
        "Per epoch: " + "; ".join(f"{e['epoch']}: loss {e['train_loss']:.3f}, val {e['val_accuracy']:.2%}, {e['seconds']:.0f} s"
                                  for e in t["history"]),
        "",
    ])


def report(o: dict[str, Any], args: argparse.Namespace) -> str:
    t, k, lin, h, ea, eo, g = o["training"], o["knn"], o["linear"], o["hnsw"], o["extract_all"], o["extract_one"], o["grpc_classify_one"]
    per_epoch = t["per_epoch_seconds"]
    pct = lambda v: f"{v:.2%}"  # noqa: E731
    met = lambda ok: "met" if ok else "**missed**"  # noqa: E731
    rows = [
        ("whole extractor training", "<= 5 min",
         f"{t['seconds']:.0f} s ({t['epochs_run']} epochs, {np.median(per_epoch):.1f} s median per epoch; {t['cpu_seconds']:.0f} CPU s "
         f"= {t['cpu_seconds'] / t['seconds']:.2f} cores of {t['threads']} threads)", met(t["seconds"] <= 300)),
        ("CNN softmax test accuracy", ">= 91.5%", pct(o["cnn_test_accuracy"]), met(o["cnn_test_accuracy"] >= 0.915)),
        ("exact k-NN on the embedding, chosen on validation", ">= 92.0% (aim 93.0%)",
         f"{pct(k['test_accuracy'])} (k={k['chosen']['k']}, {k['chosen']['weights']}, {k['preprocess']}; validation "
         f"{pct(k['chosen']['mean'])}); pixels {pct(o['pixel_baselines']['pixels (raw L2, k=5)'])}, PCA-128 + cosine "
         f"{pct(o['pixel_baselines']['PCA-128 + cosine (k=5, distance)'])}", met(k["test_accuracy"] >= 0.92)),
        ("linear head on the embedding", ">= 92.0% (aim 93.0%); fit <= 20 s",
         f"{pct(lin['test_accuracy'])}, fit (3x3 search) {lin['fit_seconds']:.1f} s", met(lin["test_accuracy"] >= 0.92 and lin["fit_seconds"] <= 20)),
        ("HNSW32 at efSearch 32 on the embedding", "recall@10 >= 0.99, >= 15x Flat batch, no accuracy lost",
         f"recall@10 {h['recall_at_10']:.4f} (ids {h['recall_ids']:.4f}); {h['speedup']:.1f}x knnserve's Flat batch (BLAS from 8 rows: "
         f"{h['flat_batch_s'] * 1e3:.0f} vs {h['hnsw_batch_s'] * 1e3:.0f} ms for the test queries), {h['speedup_vs_no_blas']:.1f}x Flat "
         f"as FAISS searches it by default (no BLAS below 128k rows: {h['flat_batch_no_blas_s'] * 1e3:.0f} ms), "
         f"{h['speedup_one']:.0f}x Flat one query a call (p50 {h['flat_one_p50_ms']:.3f} vs {h['hnsw_one_p50_ms']:.3f} ms); "
         f"k-NN accuracy {pct(h['knn_accuracy_hnsw'])} vs Flat {pct(h['knn_accuracy_flat'])}",
         met(h["recall_at_10"] >= 0.99 and h["speedup"] >= 15 and h["knn_accuracy_hnsw"] >= h["knn_accuracy_flat"])),
        ("extraction of all 70k images with onnxruntime", "<= 10 s",
         f"{ea['onnxruntime_s']:.2f} s ({ea['onnxruntime_images_per_s']:.0f} images/s, {ea['onnxruntime_cores_used']:.2f} cores "
         f"of 2 got); torch {ea['torch_s']:.2f} s ({ea['torch_images_per_s']:.0f} images/s, {ea['torch_cores_used']:.2f} cores)",
         met(ea["onnxruntime_s"] <= 10)),
        ("one-image extraction p50", "<= 0.2 ms",
         f"{eo['onnxruntime']['p50_ms']:.3f} ms (p99 {eo['onnxruntime']['p99_ms']:.3f}); torch {eo['torch']['p50_ms']:.3f} ms",
         met(eo["onnxruntime"]["p50_ms"] <= 0.2)),
        ("Classify of one raw image over gRPC, CNN + HNSW bundle", "p50 <= 2 ms",
         f"p50 {g['cnn_hnsw']['p50_ms']:.2f} ms, p99 {g['cnn_hnsw']['p99_ms']:.2f} ms; pixel HNSW bundle p50 "
         f"{g['pixel_hnsw']['p50_ms']:.2f} ms, p99 {g['pixel_hnsw']['p99_ms']:.2f} ms", met(g["cnn_hnsw"]["p50_ms"] <= 2)),
        ("ONNX vs torch", "max abs diff <= 1e-5, identical predictions",
         f"validation ({o['parity']['rows']} rows): {o['parity']['max_abs_diff']:.2g}, {o['parity']['knn_disagreements']} "
         f"different; test ({o['parity_test']['rows']} rows): {o['parity_test']['max_abs_diff']:.2g}, "
         f"{o['parity_test']['knn_disagreements']} different",
         met(o["parity"]["passed"] and o["parity_test"]["max_abs_diff"] <= 1e-5 and o["parity_test"]["knn_disagreements"] == 0)),
    ]
    lines = [
        f"# Learned features on {o['dataset'].split(':')[0]} ({o['date']})", "",
        f"- command: `{o['command']}` (under `flock /tmp/knnserve-bench.lock`)",
        f"- machine: {o['machine']}; torch {o['torch']}, onnxruntime {o['onnxruntime']}",
        f"- data: {o['dataset']}",
        f"- load average (1/5/15 min): start {o['load_start']}, after training {t['load_after']}, HNSW step {h['load']}, "
        f"extraction {ea['load']}, one-image {eo['load']}, gRPC {g['load']}, end {o['load_end']}",
        f"- whole pipeline (network, export, parity, embeddings, k-NN choice, index, linear head, test): {o['pipeline_seconds']:.0f} s",
        f"- network: cnn:{args.arch}, {t['parameters']} parameters, {t['threads']} threads, best epoch {t['best_epoch']} "
        f"(validation accuracy {pct(t['val_accuracy'])}); seconds per epoch {', '.join(f'{s:.0f}' for s in per_epoch)}; "
        f"ONNX export {o['export_seconds']:.1f} s",
        "",
        "| figure | target | measured | |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        "Per epoch: " + "; ".join(f"{e['epoch']}: loss {e['train_loss']:.3f}, val {e['val_accuracy']:.2%}" for e in t["history"]),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
