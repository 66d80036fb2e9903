"""The harness on the real Fashion-MNIST (skipped when it is not installed): a small, fast slice of the benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest

from knnserve.evaluate import EvaluateConfig, IndexRequest, parse_sweep, run_evaluate


@pytest.mark.e2e
def test_fashion_mnist_exact_and_ivf(fashion_mnist: object, tmp_path: Path) -> None:
    config = EvaluateConfig(
        out=tmp_path / "out", dataset="fashion-mnist", download=False, queries=300, mode="batch", repeats=1,
        indexes=(IndexRequest("flat"), IndexRequest("IVF256,Flat")), sweeps=(parse_sweep("nprobe=1,256"),),
        cache_dir=tmp_path / "cache", progress=False,
    )
    results = run_evaluate(config)
    flat, ivf1, ivf_all = results.runs
    assert flat.exact and flat.recall == 1.0 and flat.index is not None and flat.index["factory"] == "SQ8_direct"
    assert ivf_all.recall == 1.0 and ivf_all.accuracy == flat.accuracy  # nprobe = nlist is exhaustive
    assert ivf1.recall is not None and 0.3 < ivf1.recall < 1.0
    assert 0.80 < results.exact_accuracy < 0.90  # raw-pixel k-NN on Fashion-MNIST is about 85%
    assert results.dataset["n_train"] == 60000 and results.dataset["dim"] == 784
