"""Shared fixtures: seeded tiny data, and the real Fashion-MNIST for e2e tests when it is present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from learned_bundles import CnnBundle, make_cnn_bundle

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261126)


@pytest.fixture
def blobs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Four Gaussian classes in 16-D, float32: (x_train, y_train, x_test, y_test)."""
    centres = rng.normal(scale=3.0, size=(4, 16))
    y_train = rng.integers(0, 4, 600)
    y_test = rng.integers(0, 4, 150)
    x_train = (centres[y_train] + rng.normal(size=(600, 16))).astype(np.float32)
    x_test = (centres[y_test] + rng.normal(size=(150, 16))).astype(np.float32)
    return x_train, y_train, x_test, y_test


@pytest.fixture
def pixels(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """uint8 'images' (800, 6, 6) with labels from 3 classes, each class a brighter or darker template."""
    templates = rng.integers(0, 256, size=(3, 6, 6))
    y = rng.integers(0, 3, 800)
    noise = rng.integers(-60, 61, size=(800, 6, 6))
    return np.clip(templates[y] + noise, 0, 255).astype(np.uint8), y


def fashion_mnist_available() -> bool:
    return (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").exists() or bool(os.environ.get("KNNSERVE_DATA"))


@pytest.fixture(scope="session")
def fashion_mnist():
    """The real Fashion-MNIST; skipped when absent unless KNNSERVE_REQUIRE_DATA is set (then it fails)."""
    from knnserve.data import load_dataset
    from knnserve.errors import DatasetNotFoundError

    try:
        return load_dataset("fashion-mnist", download=False)
    except DatasetNotFoundError:
        if os.environ.get("KNNSERVE_REQUIRE_DATA"):
            raise
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")



@pytest.fixture(scope="session")
def cnn_bundle(tmp_path_factory: pytest.TempPathFactory) -> CnnBundle:
    """One tiny CNN bundle (16x16 grey images, 3 classes, HNSW, softmax head), trained once per session (seconds)."""
    return make_cnn_bundle(tmp_path_factory.mktemp("cnn-models"))
