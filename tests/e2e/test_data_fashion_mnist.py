"""The real Fashion-MNIST (Debian's dataset-fashion-mnist) loads complete and verified."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from knnserve.data import load_dataset, load_folder
from knnserve.data.checksums import verify_file
from knnserve.data.registry import FASHION_MNIST

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not DEBIAN_DIR.is_dir() and not os.environ.get("KNNSERVE_REQUIRE_DATA"),
        reason=f"{DEBIAN_DIR} absent (apt-get install dataset-fashion-mnist) and KNNSERVE_REQUIRE_DATA unset",
    ),
]


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty KNNSERVE_DATA, so the Debian copy is the one found and the home cache is untouched."""
    monkeypatch.setenv("KNNSERVE_DATA", str(tmp_path))
    return tmp_path


def test_fashion_mnist_loads_verified(empty_cache: Path) -> None:
    start = time.perf_counter()
    dataset = load_dataset(download=False)  # the default dataset
    seconds = time.perf_counter() - start

    assert dataset.name == "fashion-mnist"
    assert dataset.source == str(DEBIAN_DIR)
    assert dataset.x_train.shape == (60000, 28, 28) and dataset.x_test.shape == (10000, 28, 28)
    assert dataset.x_train.dtype == np.uint8 and dataset.y_train.dtype == np.int64
    assert dataset.n_classes == 10 and dataset.class_names[0] == "T-shirt/top"
    # Fashion-MNIST is balanced: 6,000 / 1,000 of each class.
    np.testing.assert_array_equal(np.bincount(dataset.y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(dataset.y_test), np.full(10, 1000))
    assert dataset.checksum == dataset.computed_checksum()
    assert seconds < 10, f"loading took {seconds:.1f} s"


def test_debian_files_match_the_registry_checksums() -> None:
    for remote in FASHION_MNIST.files:
        verify_file(DEBIAN_DIR / remote.name, sha256=remote.sha256)


def test_same_data_through_data_dir(empty_cache: Path) -> None:
    by_name = load_dataset("fashion-mnist", download=False)
    by_folder = load_folder(DEBIAN_DIR)
    assert by_folder.name == "fashion-mnist"  # recognised by content digests
    assert by_folder.checksum == by_name.checksum
