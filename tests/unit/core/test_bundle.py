"""Bundles: atomic save, verified load, clear errors on partial or corrupt folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from knnserve.bundle import INDEX_FILE, LABELS_FILE, MANIFEST, load_bundle, read_manifest
from knnserve.errors import BundleError
from knnserve.model import KNNModel


@pytest.fixture
def saved(tmp_path: Path, pixels) -> tuple[Path, KNNModel]:
    x, y = pixels
    model = KNNModel.fit(x, y, class_names=("a", "b", "c"), index="ivf")
    model.save(tmp_path / "m", name="m", metrics={"knn_test_accuracy": 0.5})
    return tmp_path / "m", model


def test_round_trip_keeps_predictions_and_metadata(saved, pixels) -> None:
    path, model = saved
    loaded = KNNModel.load(path)
    assert loaded.manifest is not None
    assert loaded.manifest.class_names == ("a", "b", "c")
    assert loaded.manifest.input_shape == (6, 6) and loaded.manifest.input_dtype == "uint8"
    assert loaded.manifest.index.factory.endswith("SQ8_direct")
    assert loaded.manifest.metrics["knn_test_accuracy"] == 0.5
    x, _ = pixels
    np.testing.assert_array_equal(loaded.classify(x).predictions, model.classify(x).predictions)
    assert set(loaded.manifest.files) == {INDEX_FILE, LABELS_FILE}


def test_save_leaves_no_temporary_folders_and_refuses_to_clobber(saved) -> None:
    path, model = saved
    assert [p.name for p in path.parent.iterdir()] == ["m"]
    with pytest.raises(BundleError, match="already exists"):
        model.save(path, name="m")
    model.save(path, name="m2", overwrite=True)
    assert read_manifest(path).name == "m2"
    assert [p.name for p in path.parent.iterdir()] == ["m"]


def test_missing_manifest_means_partial(saved) -> None:
    path, _ = saved
    (path / MANIFEST).unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(path)


def test_corrupt_file_is_detected(saved) -> None:
    path, _ = saved
    labels = path / LABELS_FILE
    data = bytearray(labels.read_bytes())
    data[-1] ^= 0xFF
    labels.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(path)


@pytest.mark.parametrize("name", [INDEX_FILE, LABELS_FILE])
def test_a_corrupt_header_reads_as_corrupt_not_as_the_readers_error(saved, name: str) -> None:
    # The checksums are computed while the files are read: a file FAISS or numpy cannot parse, of the
    # right size, must still be reported as a checksum mismatch, naming the file.
    path, _ = saved
    data = bytearray((path / name).read_bytes())
    data[:8] = b"garbage!"
    (path / name).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{name}: sha256 does not match the manifest"):
        load_bundle(path)


def test_a_corrupt_file_is_refused_even_when_it_parses(saved) -> None:
    # A flipped byte inside the vectors parses fine: only the checksum catches it, and nothing is returned.
    path, _ = saved
    data = bytearray((path / INDEX_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (path / INDEX_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{INDEX_FILE}: sha256 does not match the manifest"):
        KNNModel.load(path)


def test_truncated_index_is_detected(saved) -> None:
    path, _ = saved
    index = path / INDEX_FILE
    index.write_bytes(index.read_bytes()[:100])
    with pytest.raises(BundleError, match="bytes"):
        load_bundle(path)


def test_unknown_schema_version_is_refused(saved) -> None:
    path, _ = saved
    raw = json.loads((path / MANIFEST).read_text())
    raw["schema_version"] = 99
    (path / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="schema_version 99"):
        load_bundle(path)


def test_invalid_manifest_is_refused(saved) -> None:
    path, _ = saved
    raw = json.loads((path / MANIFEST).read_text())
    raw["index"]["metric"] = "cosine"
    (path / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="invalid manifest"):
        load_bundle(path)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a folder"):
        load_bundle(tmp_path / "nothing")
