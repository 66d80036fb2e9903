"""``knnserve demo``: dataset and bundle ensured, server started, the test split classified through
the client, accuracy / latency / throughput printed, server stopped."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from knnserve.bundle import read_manifest
from knnserve.data.dataset import Dataset
from knnserve.service.config import ServeConfig
from knnserve.versions import newest, next_version


@dataclass(frozen=True)
class DemoReport:
    """What the demo measured."""

    model: str
    version: int
    trained: bool
    rows: int
    requests: int
    concurrency: int
    knn_accuracy: float
    linear_accuracy: float | None
    p50_ms: float
    p99_ms: float
    rows_per_s: float
    seconds: float


def model_name(dataset: Dataset, index: str, features: str = "pixels") -> str:
    """Bundle name for a dataset, index spec and features: the dataset's name, suffixed unless flat on pixels."""
    name = dataset.name
    if features != "pixels":
        name += "-" + features.split(":")[0]  # fashion-mnist-cnn
    if index == "flat":
        return name
    return f"{name}-" + "".join(c if c.isalnum() else "-" for c in index.lower()).strip("-")


def ensure_bundle(
    models_dir: Path, dataset: Dataset, *, index: str, linear: bool, progress: bool, out: TextIO,
    features: str = "pixels", epochs: int | None = None,
) -> tuple[Path, bool]:
    """The newest bundle of this dataset, index and features under models_dir/NAME/VERSION/, trained if missing or stale.

    A new bundle gets a softmax linear head beside the index unless ``linear`` is False; with
    ``features`` cnn, an embedding network trained for at most ``epochs`` epochs.
    """
    from knnserve.train import FeaturesConfig, KnnConfig, LinearConfig, save_trained, train_model
    from knnserve.training.config import CnnConfig

    name = model_name(dataset, index, features)
    folder = models_dir / name
    checksum = dataset.checksum or dataset.computed_checksum()
    latest = newest(folder)
    if latest is not None:
        manifest = read_manifest(latest)
        if manifest.dataset is not None and manifest.dataset.checksum == checksum:
            return latest, False
        print(f"bundle {latest} was trained on other data; training a new version", file=out)
    target = next_version(folder)
    heads = "k-NN index and linear head" if linear else "k-NN index"
    on = "pixels" if features == "pixels" else f"the embedding of a {features} network trained here"
    print(f"training a bundle ({heads}, index {index}, on {on}) on {dataset.name} into {target} ...", file=out, flush=True)
    cnn = CnnConfig() if epochs is None else CnnConfig(epochs=epochs)
    result = train_model(
        dataset,
        KnnConfig(index=index, choose_k=True, preprocess="auto"),
        LinearConfig(loss="softmax" if linear else "none"),
        features=FeaturesConfig(features, cnn),
        progress=progress,
    )
    if "cnn_test_accuracy" in result.metrics:
        print(f"network trained in {result.metrics['cnn_train_seconds']:.0f} s ({result.metrics['cnn_epochs_run']} epochs); "
              f"its own softmax on the test split: {result.metrics['cnn_test_accuracy']:.4f}", file=out)
    save_trained(result, dataset, target, name=name)
    return target, True


def _classify_all(
    target: str, name: str, x: np.ndarray, heads: tuple[str, ...], *, request_rows: int, concurrency: int
) -> tuple[dict[str, np.ndarray], np.ndarray, float]:
    """Send x in requests of request_rows rows from `concurrency` clients; predictions per head, latencies, wall."""
    from knnserve_client import Client

    starts = list(range(0, len(x), request_rows))
    predictions = {head: np.empty(len(x), np.int64) for head in heads}
    latencies = np.empty(len(starts))
    clients = [Client(target, timeout=120) for _ in range(concurrency)]
    try:
        for client in clients:
            client.limits()  # connect and learn the limits before the clock starts

        def one(i: int) -> None:
            start = starts[i]
            began = time.perf_counter()
            result = clients[i % concurrency].classify(name, x[start : start + request_rows], heads=heads, top_n=0)
            latencies[i] = time.perf_counter() - began
            for head in heads:
                answer = result.knn if head == "knn" else result.linear
                assert answer is not None
                predictions[head][start : start + request_rows] = answer.predictions

        began = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(len(starts))))
        wall = time.perf_counter() - began
    finally:
        for client in clients:
            client.close()
    return predictions, latencies, wall


def run_demo(
    *,
    models_dir: Path = Path("models"),
    dataset: str | None = None,
    data_dir: Path | None = None,
    index: str = "flat",
    linear: bool = True,
    features: str = "pixels",
    epochs: int | None = None,
    request_rows: int = 100,
    concurrency: int = 4,
    progress: bool = True,
    out: TextIO | None = None,
) -> DemoReport:
    """Ensure data and bundle, serve it on 127.0.0.1, classify the test split through the client, report, stop."""
    from knnserve.data import load_dataset
    from knnserve.service.server import KnnServer

    out = out or sys.stdout

    data = load_dataset(dataset, data_dir=data_dir, download=False)
    print(f"dataset {data.name}: {len(data.x_train)} train, {len(data.x_test)} test ({data.source})", file=out)
    if features != "pixels":
        from knnserve.features.learned import check_features_available, parse_features

        check_features_available(parse_features(features))  # the extra missing: say so before loading anything else
    bundle, trained = ensure_bundle(models_dir, data, index=index, linear=linear, progress=progress, out=out,
                                    features=features, epochs=epochs)
    server = KnnServer(ServeConfig(model_dir=bundle, host="127.0.0.1", port=0, grace_s=5.0))
    try:
        port = server.start()
        server.load_models()
        served = next(iter(server.registry.snapshot().values()))
        (version, model) = next(iter(served.items()))
        heads = model.heads
        extractor = model.model.extractor
        space = "pixels" if extractor is None else f"the {extractor.embedding_dim}-d embedding of {extractor.record.source}, run by onnxruntime"
        print(f"serving {model.name} version {version} ({model.model.index_info.factory}, heads {', '.join(heads)}, "
              f"on {space}) on 127.0.0.1:{port}", file=out, flush=True)
        if "linear" not in heads:
            print("linear head: this bundle has none (k-NN only); train a new version with one to compare", file=out)
        predictions, latencies, wall = _classify_all(
            f"127.0.0.1:{port}", model.name, data.x_test, heads, request_rows=request_rows, concurrency=concurrency
        )
    finally:
        server.stop()
    report = DemoReport(
        model=model.name,
        version=version,
        trained=trained,
        rows=len(data.x_test),
        requests=len(latencies),
        concurrency=concurrency,
        knn_accuracy=float(np.mean(predictions["knn"] == data.y_test)),
        linear_accuracy=float(np.mean(predictions["linear"] == data.y_test)) if "linear" in predictions else None,
        p50_ms=float(np.percentile(latencies, 50) * 1e3),
        p99_ms=float(np.percentile(latencies, 99) * 1e3),
        rows_per_s=len(data.x_test) / wall,
        seconds=wall,
    )
    print(f"k-NN accuracy:   {report.knn_accuracy:.4f} on {report.rows} test rows", file=out)
    if report.linear_accuracy is not None:
        print(f"linear accuracy: {report.linear_accuracy:.4f}", file=out)
    print(f"latency per request of {request_rows} rows ({concurrency} concurrent clients): "
          f"p50 {report.p50_ms:.1f} ms, p99 {report.p99_ms:.1f} ms", file=out)
    print(f"throughput: {report.rows_per_s:.0f} rows/s ({report.requests} requests in {report.seconds:.2f} s)", file=out)
    print("server stopped", file=out)
    return report


__all__ = ["DemoReport", "ensure_bundle", "model_name", "run_demo"]
