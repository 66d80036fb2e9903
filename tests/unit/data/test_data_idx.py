"""IDX reading: header parsing for every type code, gzip or not, folders, and malformed files."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
from data_writers import IDX_STEMS, IdxData, idx_bytes, write_file, write_idx_folder

from knnserve.data import read_idx
from knnserve.data.idx import read_idx_folder
from knnserve.errors import DatasetError


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trips_every_type_code(tmp_path: Path, dtype: type, gz: bool) -> None:
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        array = rng.integers(info.min, info.max, size=(4, 3, 2), dtype=dtype, endpoint=True)
    else:
        array = rng.standard_normal((4, 3, 2)).astype(dtype)
    path = write_file(tmp_path / ("a.idx" + (".gz" if gz else "")), idx_bytes(array), gz)

    out = read_idx(path)

    assert out.dtype == np.dtype(dtype)
    assert out.dtype.isnative
    assert out.shape == (4, 3, 2)
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable


def test_read_idx_one_dimensional_labels(tmp_path: Path) -> None:
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    path = write_file(tmp_path / "labels", idx_bytes(labels), gz=False)
    np.testing.assert_array_equal(read_idx(path), labels)


def _corrupt(tmp_path: Path, content: bytes, name: str = "broken-idx3-ubyte") -> Path:
    return write_file(tmp_path / name, content, gz=False)


GOOD = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x01\x02" + GOOD[2:], "bad magic number"),
        (GOOD[:2] + b"\x07" + GOOD[3:], "unknown IDX type code 0x07"),
        (GOOD[:3] + b"\x00", "at least 1 dimension"),
        (GOOD[:2], "header of 4 bytes"),
        (GOOD[:9], "truncated IDX header"),
        (GOOD[:-1], "truncated"),
        (GOOD + b"\x00", "trailing bytes"),
    ],
    ids=["magic", "type-code", "ndim-zero", "short-header", "short-dims", "truncated", "trailing"],
)
def test_malformed_idx_raises_dataset_error_naming_file(tmp_path: Path, content: bytes, expected: str) -> None:
    path = _corrupt(tmp_path, content)
    with pytest.raises(DatasetError) as info:
        read_idx(path)
    assert path.name in str(info.value)
    assert expected in str(info.value)


def test_truncated_gzip_raises_dataset_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(GOOD)[:-10])
    with pytest.raises(DatasetError, match="cut.gz.*gzip"):
        read_idx(path)


def test_missing_idx_file_raises_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nothing-here.*not found"):
        read_idx(tmp_path / "nothing-here")


@pytest.mark.parametrize(("gz", "dotted"), [(True, False), (False, False), (True, True), (False, True)])
def test_read_idx_folder_standard_names(tmp_path: Path, idx_data: IdxData, gz: bool, dotted: bool) -> None:
    write_idx_folder(tmp_path, idx_data, gz=gz, dotted=dotted)

    splits = read_idx_folder(tmp_path, n_classes=10)

    np.testing.assert_array_equal(splits.x_train, idx_data.arrays["train_images"])
    np.testing.assert_array_equal(splits.x_test, idx_data.arrays["test_images"])
    np.testing.assert_array_equal(splits.y_train, idx_data.arrays["train_labels"])
    np.testing.assert_array_equal(splits.y_test, idx_data.arrays["test_labels"])
    assert splits.y_train.dtype == np.int64 and splits.x_train.dtype == np.uint8
    # Digests of the decompressed content, whatever the compression.
    assert dict(splits.content_sha256) == {
        stem: hashlib.sha256(content).hexdigest() for stem, content in idx_data.contents.items()
    }


def test_folder_with_a_missing_file_names_it(tmp_path: Path, idx_data: IdxData) -> None:
    paths = write_idx_folder(tmp_path, idx_data)
    paths["test_labels"].unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte"):
        read_idx_folder(tmp_path)


def test_label_count_mismatch_names_label_file(tmp_path: Path, idx_data: IdxData) -> None:
    arrays = dict(idx_data.arrays)
    arrays["train_labels"] = arrays["train_labels"][:-1]
    write_idx_folder(tmp_path, IdxData(arrays))
    with pytest.raises(DatasetError) as info:
        read_idx_folder(tmp_path)
    message = str(info.value)
    assert IDX_STEMS["train_labels"] in message
    assert f"expected {len(arrays['train_images'])} labels" in message


def test_labels_out_of_range_name_the_file(tmp_path: Path, idx_data: IdxData) -> None:
    arrays = dict(idx_data.arrays)
    labels = arrays["test_labels"].copy()
    labels[0] = 12
    arrays["test_labels"] = labels
    write_idx_folder(tmp_path, IdxData(arrays))
    with pytest.raises(DatasetError) as info:
        read_idx_folder(tmp_path, n_classes=10)
    assert IDX_STEMS["test_labels"] in str(info.value)
    assert "0..9" in str(info.value)


def test_float_labels_are_refused(tmp_path: Path, idx_data: IdxData) -> None:
    arrays = dict(idx_data.arrays)
    arrays["train_labels"] = arrays["train_labels"].astype(np.float32)
    write_idx_folder(tmp_path, IdxData(arrays))
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte.*integer labels"):
        read_idx_folder(tmp_path)


def test_train_and_test_image_shapes_must_agree(tmp_path: Path, idx_data: IdxData) -> None:
    arrays = dict(idx_data.arrays)
    arrays["test_images"] = arrays["test_images"][:, :20, :20].copy()
    write_idx_folder(tmp_path, IdxData(arrays))
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.*shape"):
        read_idx_folder(tmp_path)
