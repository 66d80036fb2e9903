"""Bundles with k-NN preprocessing are scored in their own feature space, in-process, over gRPC and when tuned."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from knnserve.bundle import DatasetInfo, load_bundle
from knnserve.data import load_dataset
from knnserve.errors import KnnServeError
from knnserve.evaluate import EvaluateConfig, IndexRequest, exact_distances, ground_truth, parse_sweep, run_evaluate
from knnserve.features.preprocess import PreprocessConfig
from knnserve.model import KNNModel
from knnserve_client.wire.query import KnnQuery

COSINE_PCA = PreprocessConfig(pca_dim=12, l2_normalize=True)


def _bundle(config: EvaluateConfig, path: Path, index: str, preprocess: PreprocessConfig | None) -> KNNModel:
    dataset = load_dataset(data_dir=config.data_dir)
    model = KNNModel.fit(dataset.x_train, dataset.y_train, class_names=dataset.class_names, index=index, preprocess=preprocess)
    info = DatasetInfo(name=dataset.name, checksum=dataset.checksum, n_train=dataset.x_train.shape[0])
    model.save(path, name=path.name, dataset=info)
    return model


def test_a_preprocessed_bundle_is_scored_against_exact_search_in_its_space(fast_config: EvaluateConfig, tmp_path: Path) -> None:
    model = _bundle(fast_config, tmp_path / "cos", "flat", COSINE_PCA)
    results = run_evaluate(replace(fast_config, mode="batch", bundles=(tmp_path / "cos",)))
    bundle_run = next(r for r in results.runs if r.space == "bundle:cos")
    raw_flat = next(r for r in results.runs if r.space == "raw")
    # exact search in the bundle's own space: recall 1 there, although its neighbours differ from raw pixels'
    assert bundle_run.exact and bundle_run.recall == 1.0 and raw_flat.recall == 1.0
    space = results.spaces["bundle:cos"]
    assert space["dim"] == 12 and results.spaces["raw"]["dim"] == 64
    assert bundle_run.accuracy_delta == 0.0 and bundle_run.accuracy == space["exact_accuracy"]
    # and that space's truth is what the bundle's own exact search returns
    dataset = load_dataset(data_dir=fast_config.data_dir)
    base = model.preprocessor.transform(dataset.x_train.reshape(900, -1))  # type: ignore[union-attr]
    queries = model.preprocessor.transform(dataset.x_test.reshape(120, -1))  # type: ignore[union-attr]
    _, ids = model.search(model.prepare(dataset.x_test), model.resolve(KnnQuery(k=10)))
    truth = ground_truth(base, queries, 10, "l2", cache_dir=None)
    np.testing.assert_allclose(exact_distances(base, queries, ids, "l2"), truth.distances, rtol=1e-5)
    # the raw Flat runs (FAISS alone and its exact-int8 kernel) are the exact references; the bundle's space is not raw
    raw_ids = {r.run_id for r in results.runs if r.space == "raw"}
    assert results.references["batch"] is not None and results.references["batch"].run_id in raw_ids


def test_server_mode_needs_the_bundle_of_a_preprocessing_model(fast_config: EvaluateConfig, tmp_path: Path) -> None:
    from knnserve.service.config import ServeConfig
    from knnserve.service.server import KnnServer

    _bundle(fast_config, tmp_path / "cosine", "IVF8,Flat", PreprocessConfig(l2_normalize=True))  # same dim: only distances tell
    server = KnnServer(ServeConfig(model_dir=tmp_path / "cosine", port=0, grace_s=1.0))
    port = server.start()
    try:
        server.load_models()
        config = replace(fast_config, indexes=(), mode="batch", server=f"127.0.0.1:{port}", model="cosine",
                         sweeps=(parse_sweep("nprobe=8"),))
        with pytest.raises(KnnServeError, match="another feature space"):
            run_evaluate(config)
        results = run_evaluate(replace(config, bundles=(tmp_path / "cosine",)))
    finally:
        server.stop(0)
    wire = next(r for r in results.runs if r.transport == "grpc")
    local = next(r for r in results.runs if r.transport == "in-process")
    assert wire.space == local.space == "bundle:cosine"
    assert wire.recall == local.recall == 1.0  # nprobe = nlist: exact in the bundle's space


def test_tuning_a_preprocessed_bundle_happens_in_its_space(fast_config: EvaluateConfig, tmp_path: Path) -> None:
    from knnserve.evaluate.tune import TuneSettings, tune_bundle, write_tuned_version

    _bundle(fast_config, tmp_path / "pca", "IVF8,Flat", COSINE_PCA)
    config = replace(fast_config, indexes=(IndexRequest("flat"),), bundles=(tmp_path / "pca",), mode="batch",
                     target_recall=0.95, tune_queries=100)
    reported = next(t for t in run_evaluate(config).tuning if t.index.get("space") == "bundle:pca")
    settings = TuneSettings(target_recall=0.95, k=10, tune_queries=100)
    record = tune_bundle(tmp_path / "pca", load_dataset(data_dir=fast_config.data_dir), settings)
    assert record.index["space"] == "bundle:pca" and record.reached and record.value == reported.value
    written = write_tuned_version(tmp_path / "pca", record, k=10, recall_epsilon=1e-3, out=tmp_path / "pca-tuned")
    assert load_bundle(written).manifest.knn.nprobe == record.value


def test_a_bundle_with_an_extractor_is_compared_beside_a_pixel_bundle(fast_config: EvaluateConfig, tmp_path: Path) -> None:
    from learned_bundles import tiny_onnx

    from knnserve.evaluate.report import read_results
    from knnserve.features.extractor import Extractor, inspect_onnx

    dataset = load_dataset(data_dir=fast_config.data_dir)
    onnx = tiny_onnx(tmp_path / "net.onnx", ["batch", 1, 8, 8], out=6)
    extractor = Extractor(onnx.read_bytes(), inspect_onnx(onnx), threads=1)
    model = KNNModel.fit(dataset.x_train, dataset.y_train, class_names=dataset.class_names, index="hnsw", extractor=extractor)
    info = DatasetInfo(name=dataset.name, checksum=dataset.checksum, n_train=dataset.x_train.shape[0])
    model.save(tmp_path / "learned", name="learned", dataset=info)
    _bundle(fast_config, tmp_path / "cos", "flat", COSINE_PCA)
    config = replace(fast_config, indexes=(), bundles=(tmp_path / "cos", tmp_path / "learned"), sweeps=(parse_sweep("efSearch=16"),))
    results = run_evaluate(config)
    learned = next(r for r in results.runs if r.space == "bundle:learned")
    pixels = next(r for r in results.runs if r.space == "bundle:cos")
    assert results.spaces["bundle:learned"]["dim"] == 6 and "extractor (onnx:net.onnx, 6-d embedding)" in \
        results.spaces["bundle:learned"]["description"]
    extraction = learned.extraction
    assert extraction is not None and extraction.batch_seconds > 0 and 0 < extraction.batch_share <= 1
    assert extraction.single_p50_ms is not None and extraction.single_p50_ms <= learned.single.p50_ms  # type: ignore[union-attr]
    assert pixels.extraction is None and learned.index["features"] == "onnx:net.onnx"  # type: ignore[index]
    report = (fast_config.out / "report.md").read_text()
    assert "## Bundles side by side" in report and "## Feature extraction" in report
    assert read_results(fast_config.out / "results.json").runs[-1].extraction is not None
