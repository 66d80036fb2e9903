"""The harness on the real Fashion-MNIST (skipped when it is not installed): a small, fast slice of the benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest

from knnserve.evaluate import EvaluateConfig, IndexRequest, parse_sweep, run_evaluate


@pytest.mark.e2e
def test_fashion_mnist_exact_and_ivf(fashion_mnist: object, tmp_path: Path) -> None:
    config = EvaluateConfig(
        out=tmp_path / "out", dataset="fashion-mnist", download=False, queries=60, mode="batch", repeats=1,
        indexes=(IndexRequest("flat", "uint8"), IndexRequest("IVF64,Flat", "float32")), sweeps=(parse_sweep("nprobe=1,8"),),
        cache_dir=tmp_path / "cache", progress=False,
    )
    results = run_evaluate(config)
    # Each index has a search kernel here, so each setting has two rows: FAISS alone, then the kernel.
    assert [r.index["kernel"] for r in results.runs if r.index] == ["faiss", "exact-int8"] + ["faiss", "ivf-gemm-int8"] * 2
    for faiss_run, kernel_run in zip(results.runs[::2], results.runs[1::2]):  # same neighbours either way
        assert faiss_run.recall == kernel_run.recall and faiss_run.accuracy == kernel_run.accuracy
    flat, ivf1, ivf8 = results.runs[1::2]
    # raw uint8 bytes (SQ8_direct) are exact on real pixels: recall 1 against the float64 re-ranked truth
    assert flat.exact and flat.recall == 1.0 and flat.index is not None and flat.index["factory"] == "SQ8_direct"
    assert ivf1.index is not None and ivf1.index["factory"] == "IVF64,Flat"
    assert ivf1.recall is not None and ivf8.recall is not None and 0.2 < ivf1.recall < ivf8.recall <= 1.0
    assert 0.70 < results.exact_accuracy < 0.97  # raw-pixel k-NN on Fashion-MNIST is about 85% (60 queries here)
    assert results.dataset["n_train"] == 60000 and results.dataset["dim"] == 784
