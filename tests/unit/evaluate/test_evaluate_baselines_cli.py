"""Baselines (scikit-learn in a faiss-free child, the naive loop), --server mode over a real server, and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from knnserve.cli import main
from knnserve.data import load_dataset
from knnserve.evaluate import EvaluateConfig, IndexRequest, ground_truth, parse_sweep, run_evaluate
from knnserve.evaluate.runner import run_system
from knnserve.evaluate.systems.baselines import ChildBaseline, NaiveLoop
from knnserve.evaluate.workload import make_workload
from knnserve.model import KNNModel


def test_sklearn_child_agrees_with_exact_knn_and_never_imports_faiss(fast_config: EvaluateConfig) -> None:
    workload = make_workload(load_dataset(data_dir=fast_config.data_dir))
    config = replace(fast_config, mode="both")
    (sk,) = run_system(ChildBaseline(workload, config, "sklearn"), workload, config)
    (gemm,) = run_system(ChildBaseline(workload, config, "matmul"), workload, config)
    assert sk.single is None and gemm.predictions is None  # batch only; the GEMM bound answers nothing
    assert sk.system == "sklearn" and gemm.system == "matmul"
    assert sk.batch is not None and gemm.batch is not None and sk.batch.queries == workload.queries.shape[0]
    # scikit-learn breaks ties by the lowest class, so compare with knnserve's exact vote under that rule
    from knnserve.evaluate.scoring import exact_predictions

    truth = ground_truth(workload.base, workload.queries, 10, "l2", cache_dir=None)
    np.testing.assert_array_equal(sk.predictions, exact_predictions(truth, workload, fast_config, tie_break="lowest"))


def test_naive_loop_is_one_nearest_neighbor_on_a_subsample(fast_config: EvaluateConfig) -> None:
    workload = make_workload(load_dataset(data_dir=fast_config.data_dir))
    config = replace(fast_config, naive_queries=6, mode="batch")  # the naive loop is timed one row a call anyway
    (run,) = run_system(NaiveLoop(workload, config), workload, config)
    truth = ground_truth(workload.base, workload.queries, 1, "l2", cache_dir=None)
    rows = run.prediction_rows
    assert rows is not None and rows.size == 6 and run.single is not None
    np.testing.assert_array_equal(run.predictions, workload.base_labels[truth.ids[rows, 0]])
    assert run.extrapolated_seconds == pytest.approx(run.single.latencies.mean() * workload.queries.shape[0])


def test_server_mode_measures_the_served_model_over_grpc(fast_config: EvaluateConfig, tmp_path: Path) -> None:
    from knnserve.service.config import ServeConfig
    from knnserve.service.server import KnnServer

    dataset = load_dataset(data_dir=fast_config.data_dir)
    KNNModel.fit(dataset.x_train, dataset.y_train, index="IVF8,Flat").save(tmp_path / "served", name="pixels")
    server = KnnServer(ServeConfig(model_dir=tmp_path / "served", port=0, grace_s=1.0))
    port = server.start()
    try:
        server.load_models()
        config = replace(fast_config, indexes=(IndexRequest("IVF8,Flat"),), sweeps=(parse_sweep("nprobe=1,8"),),
                         server=f"127.0.0.1:{port}", model="pixels")
        results = run_evaluate(config)
    finally:
        server.stop(0)
    wire = [r for r in results.runs if r.transport == "grpc"]
    local = [r for r in results.runs if r.transport == "in-process" and r.index and r.index["kind"] == "ivf"
             and r.index["kernel"] != "faiss"]
    assert [r.params for r in wire] == [r.params for r in local] == [{"nprobe": 1}, {"nprobe": 8}]
    assert wire[1].recall == 1.0  # every list probed: exact, over the wire too
    assert wire[0].recall == pytest.approx(local[0].recall)  # same factory, same k-means seed, same data
    assert all(r.batch and r.single and r.single.p50_ms > 0 for r in wire)
    assert "## In-process vs over the wire" in (config.out / "report.md").read_text()


def test_cli_evaluate_on_an_npz(pixel_npz: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli-out"
    code = main([
        "evaluate", "--data-dir", str(pixel_npz), "--index", "flat", "--index", "hnsw", "--sweep", "efSearch=16,32",
        "--k", "5", "--mode", "batch", "--repeats", "1", "--threads", "1", "--cache-dir", str(tmp_path / "cache"),
        "--no-progress", "--out", str(out),
    ])
    assert code == 0
    printed = capsys.readouterr().out
    assert "exact k-NN accuracy" in printed and str(out / "results.json") in printed
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["k"] == 5
    assert results["command"] == [  # the command line as typed, not a reconstruction
        "knnserve", "evaluate", "--data-dir", str(pixel_npz), "--index", "flat", "--index", "hnsw", "--sweep", "efSearch=16,32",
        "--k", "5", "--mode", "batch", "--repeats", "1", "--threads", "1", "--cache-dir", str(tmp_path / "cache"),
        "--no-progress", "--out", str(out)]
    # flat gets the exact-int8 kernel, and its FAISS-only twin a row of its own first; hnsw has no kernel
    assert [r["params"].get("ef_search") for r in results["runs"]] == [None, None, 16, 32]
    assert [r["index"]["kernel"] for r in results["runs"]] == ["faiss", "exact-int8", "faiss", "faiss"]
    assert "Kernel exact-int8 (batch)" in (out / "report.md").read_text()
    assert (out / "report.md").is_file() and (out / "recall_vs_qps.png").is_file()


def test_cli_rejects_a_bad_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--index", "flat", "--sweep", "depth=3", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "NAME=V1,V2" in capsys.readouterr().err


def test_outputs_are_ordinary_readable_files(pixel_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "perm"
    assert main(["evaluate", "--data-dir", str(pixel_npz), "--index", "flat", "--mode", "batch", "--repeats", "1",
                 "--no-cache", "--no-progress", "--out", str(out)]) == 0
    for name in ("results.json", "report.md"):
        assert (out / name).stat().st_mode & 0o044 == 0o044  # group and others may read, as with any output


def test_server_mode_sends_the_token_and_reports_auth_failures_as_client_errors(fast_config: EvaluateConfig,
                                                                                tmp_path: Path) -> None:
    from knnserve.service.config import ServeConfig
    from knnserve_client import UnauthenticatedError
    from knnserve.service.server import KnnServer

    dataset = load_dataset(data_dir=fast_config.data_dir)
    KNNModel.fit(dataset.x_train, dataset.y_train).save(tmp_path / "served", name="pixels")
    server = KnnServer(ServeConfig(model_dir=tmp_path / "served", port=0, grace_s=1.0, token="s3cret"))
    port = server.start()
    try:
        server.load_models()
        config = replace(fast_config, indexes=(), mode="batch", server=f"127.0.0.1:{port}", model="pixels")
        with pytest.raises(UnauthenticatedError, match="UNAUTHENTICATED"):  # the CLI: one line, exit status 3
            run_evaluate(config)
        results = run_evaluate(replace(config, server_token="s3cret"))
    finally:
        server.stop(0)
    assert [r.recall for r in results.runs] == [1.0]
    assert "s3cret" not in " ".join(results.command)
