"""A whole evaluation on tiny data: exact Flat scores recall 1.0, accuracies are right, outputs are written and valid."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from knnserve.bundle import DatasetInfo, load_bundle
from knnserve.data import load_dataset
from knnserve.errors import BundleError, InvalidInputError
from knnserve.evaluate import EvaluateConfig, IndexRequest, Results, parse_index_request, parse_sweep, read_results, run_evaluate
from knnserve.model import KNNModel
from knnserve.vote import vote

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _exact_knn_accuracy(npz: Path, k: int) -> float:
    """k-NN accuracy by brute force in numpy (uniform vote, nearest-first tie rule), independent of the harness."""
    data = np.load(npz)
    xtr = data["x_train"].reshape(len(data["x_train"]), -1).astype(np.float64)
    xte = data["x_test"].reshape(len(data["x_test"]), -1).astype(np.float64)
    dist = ((xte[:, None, :] - xtr[None, :, :]) ** 2).sum(axis=2)
    order = np.lexsort((np.broadcast_to(np.arange(xtr.shape[0]), dist.shape), dist), axis=1)[:, :k]
    labels = data["y_train"][order]
    predictions = vote(labels, np.sqrt(np.take_along_axis(dist, order, axis=1)), 4).predictions
    return float(np.mean(predictions == data["y_test"]))


def test_evaluation_writes_valid_outputs_and_exact_flat_has_recall_one(fast_config: EvaluateConfig) -> None:
    config = replace(
        fast_config,
        indexes=(IndexRequest("flat", "uint8"), IndexRequest("flat", "float32"), IndexRequest("IVF8,Flat"), IndexRequest("hnsw")),
        sweeps=(parse_sweep("nprobe=1,8,64"), parse_sweep("efSearch=10,40")),
        baselines=("faiss",),
    )
    results = run_evaluate(config)

    by_label = {r.label: r for r in results.runs}
    exact = [r for r in results.runs if r.exact]
    assert {r.index["factory"] for r in exact if r.index} == {"SQ8_direct", "Flat"}  # raw bytes and float32 storage
    for record in exact:
        assert record.recall == 1.0 and record.accuracy_delta == 0.0
    assert results.exact_accuracy == pytest.approx(_exact_knn_accuracy(config.data_dir, 5))  # type: ignore[arg-type]
    # nprobe=64 is above nlist=8: skipped and said so; nprobe=8 probes every list, so it is exact too.
    ivf = [r for r in results.runs if r.index and r.index["factory"] == "IVF8,SQ8_direct" and r.index["kernel"] != "faiss"]
    twins = [r for r in results.runs if r.index and r.index["factory"] == "IVF8,SQ8_direct" and r.index["kernel"] == "faiss"]
    assert [r.index["kernel"] for r in ivf] == ["ivf-gemm-int8"] * 2 and [r.params for r in twins] == [r.params for r in ivf]
    assert [r.recall for r in twins] == [r.recall for r in ivf]  # the kernel finds what FAISS finds
    assert all(r.index and r.index["kernel"] == "faiss" for r in results.runs if r.system == "faiss")  # bare faiss
    assert [r.params["nprobe"] for r in ivf] == [1, 8]
    assert ivf[1].recall == 1.0 and ivf[0].recall < 1.0
    assert any("nprobe 64 skipped" in note for note in ivf[0].notes)
    assert [r.params["ef_search"] for r in results.runs if r.index and r.index["kind"] == "hnsw"] == [10, 40]
    # memory: raw bytes are 4x smaller than float32 vectors (plus a small header)
    sq8 = next(r for r in exact if r.index and r.index["factory"] == "SQ8_direct")
    assert sq8.memory is not None and 3.5 < sq8.memory.smaller_than_float32 <= 4.0
    assert by_label
    # speedups are relative to the fastest exact in-process search, which therefore has speedup 1
    for mode in ("batch", "single"):
        ref = results.references[mode]
        assert ref is not None
        assert next(r for r in results.runs if r.run_id == ref.run_id).exact
        assert max(getattr(r, mode).speedup for r in exact) == pytest.approx(1.0)

    out = config.out
    again = read_results(out / "results.json")  # validates against the schema
    assert again.runs == results.runs
    raw = json.loads((out / "results.json").read_text())
    assert set(Results.model_json_schema()["required"]) <= set(raw)
    for record in raw["runs"]:
        assert {"run_id", "label", "params", "recall", "accuracy", "batch", "single", "build", "memory"} <= set(record)
        assert record["batch"]["qps"] > 0 and record["single"]["p99_ms"] >= record["single"]["p50_ms"]
        assert record["batch"]["cores_used"] > 0 and len(record["batch"]["seconds"]) == record["batch"]["passes"]
    report = (out / "report.md").read_text()
    for heading in ("## Answers", "## Batch throughput", "## Single-query latency", "## Memory and build time"):
        assert heading in report
    assert "Harness overhead (batch)" in report
    for name in ("recall_vs_qps.png", "accuracy_vs_qps.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC


def test_batch_only_mode_has_no_latency_and_the_cache_is_reused(fast_config: EvaluateConfig) -> None:
    config = replace(fast_config, mode="batch", queries=50)
    first = run_evaluate(config)
    second = run_evaluate(replace(config, out=config.out.parent / "out2", save_raw=True))
    assert not first.ground_truth["cached"] and second.ground_truth["cached"]
    with np.load(config.out.parent / "out2" / "raw" / "r00.npz") as raw:  # --save-raw: the neighbours scored
        assert raw["ids"].shape == (50, 10) and raw["distances"].shape == (50, 10)
    assert first.dataset["n_queries"] == 50
    assert all(r.single is None and r.batch is not None for r in second.runs)
    assert second.exact_accuracy == first.exact_accuracy


def test_tuning_is_reported_and_the_evaluation_writes_no_bundle(fast_config: EvaluateConfig, tmp_path: Path) -> None:
    dataset = load_dataset(data_dir=fast_config.data_dir)
    model = KNNModel.fit(dataset.x_train, dataset.y_train, class_names=dataset.class_names, index="IVF8,Flat")
    bundle = tmp_path / "models" / "tuned" / "1"
    info = DatasetInfo(name=dataset.name, checksum=dataset.checksum, n_train=dataset.x_train.shape[0])
    model.save(bundle, name="tuned", dataset=info)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in bundle.iterdir())
    results = run_evaluate(replace(fast_config, mode="batch", bundles=(bundle,), target_recall=0.95, tune_queries=100))
    record = next(t for t in results.tuning if t.index.get("bundle") == str(bundle))
    assert record.reached and record.recall is not None and record.recall >= 0.95 and record.written_to is None
    assert all(e["recall"] < 0.95 for e in record.evaluations if e["value"] < record.value)  # type: ignore[operator]
    assert sorted((p.name, p.stat().st_mtime_ns) for p in bundle.iterdir()) == before
    assert sorted(p.name for p in bundle.parent.iterdir()) == ["1"]


def test_tune_command_writes_the_tuned_default_as_the_next_version(pixel_npz: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from knnserve.cli import main

    dataset = load_dataset(data_dir=pixel_npz)
    model = KNNModel.fit(dataset.x_train, dataset.y_train, class_names=dataset.class_names, index="IVF8,Flat")
    bundle = tmp_path / "models" / "tuned" / "1"
    model.save(bundle, name="tuned", dataset=DatasetInfo(name=dataset.name, checksum=dataset.checksum, n_train=900))
    original = load_bundle(bundle).manifest
    code = main(["tune", "--data-dir", str(pixel_npz), "--bundle", str(bundle), "--target-recall", "0.95",
                 "--tune-queries", "100", "--k", "5", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    written = load_bundle(bundle.parent / "2").manifest  # checksums verified
    tuning = written.extra["tuning"]
    assert written.knn.nprobe == tuning["value"] and tuning["target_recall"] == 0.95 and tuning["k"] == 5
    assert tuning["recall"] >= 0.95 and tuning["tuned_from"] == str(bundle)
    assert written.index == original.index and written.name == "tuned"
    assert load_bundle(bundle).manifest == original  # the tuned-from version is untouched
    assert f"wrote {bundle.parent / '2'}" in capsys.readouterr().out


def test_tune_refuses_a_bundle_of_other_data(pixel_npz: Path, tmp_path: Path) -> None:
    from knnserve.evaluate.tune import TuneSettings, tune_bundle

    rng = np.random.default_rng(3)
    other = KNNModel.fit(rng.integers(0, 255, size=(900, 8, 8), dtype=np.uint8), rng.integers(0, 4, 900), index="IVF8,Flat")
    other.save(tmp_path / "other", name="other", dataset=DatasetInfo(name="x", checksum="0" * 64, n_train=900))
    with pytest.raises(BundleError, match="checksum"):
        tune_bundle(tmp_path / "other", load_dataset(data_dir=pixel_npz), TuneSettings(target_recall=0.9, tune_queries=100))


def test_config_and_parsers_reject_bad_values(tmp_path: Path) -> None:
    assert parse_index_request("IVF64,PQ8@float32") == IndexRequest("IVF64,PQ8", "float32")
    assert parse_sweep("efSearch=64,16,16").values == (16, 64)
    for bad in ("nprobe", "nprobe=", "nprobe=0", "depth=3", "nprobe=a"):
        with pytest.raises(InvalidInputError):
            parse_sweep(bad)
    with pytest.raises(InvalidInputError):
        parse_index_request("flat@float16")
    with pytest.raises(InvalidInputError):
        EvaluateConfig(out=tmp_path, indexes=())
    with pytest.raises(InvalidInputError):
        EvaluateConfig(out=tmp_path, indexes=(IndexRequest("flat"),), server="127.0.0.1:1")
    with pytest.raises(InvalidInputError):
        EvaluateConfig(out=tmp_path, indexes=(IndexRequest("flat"),), target_recall=1.5)
