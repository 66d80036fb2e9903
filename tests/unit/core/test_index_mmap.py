"""Bundles loaded with mmap=True map their index file (shared between processes) and answer exactly
as a copy in memory does, for each index family the server maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knnserve.model import KNNModel


def mapped_files() -> set[str]:
    return {line.split(maxsplit=5)[5] for line in Path("/proc/self/maps").read_text().splitlines() if len(line.split()) == 6}


@pytest.mark.parametrize("index", ["flat", "HNSW16", "IVF8,Flat", "IVF8,PQ4", "PCA8,HNSW16"])
def test_mapped_index_answers_like_a_copy(blobs, tmp_path: Path, index: str) -> None:
    x_train, y_train, x_test, _ = blobs
    path = tmp_path / "bundle"
    KNNModel.fit(x_train, y_train, index=index).save(path, name="m")
    copied = KNNModel.load(path)
    mapped = KNNModel.load(path, mmap=True)
    assert str(path / "index.faiss") in mapped_files()
    a, b = copied.classify(x_test), mapped.classify(x_test)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_allclose(a.distances, b.distances, rtol=1e-6)


def test_a_copy_does_not_map_the_file(blobs, tmp_path: Path) -> None:
    x_train, y_train, _, _ = blobs
    path = tmp_path / "bundle"
    KNNModel.fit(x_train, y_train, index="flat").save(path, name="m")
    KNNModel.load(path)
    assert str(path / "index.faiss") not in mapped_files()
