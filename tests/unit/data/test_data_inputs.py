"""read_input_array: .npy (no pickle) or IDX images, anything else refused with the file named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_writers import idx_bytes, write_file

from knnserve.data import read_input_array
from knnserve.errors import DatasetError


def test_npy(tmp_path: Path) -> None:
    array = np.random.default_rng(0).standard_normal((3, 7)).astype(np.float32)
    np.save(tmp_path / "q.npy", array)
    out = read_input_array(tmp_path / "q.npy")
    np.testing.assert_array_equal(out, array)
    assert out.dtype == np.float32


@pytest.mark.parametrize("gz", [False, True])
def test_idx_images(tmp_path: Path, gz: bool) -> None:
    images = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    path = write_file(tmp_path / ("imgs-idx3-ubyte" + (".gz" if gz else "")), idx_bytes(images), gz)
    np.testing.assert_array_equal(read_input_array(path), images)


def test_pickled_npy_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match="obj.npy"):
        read_input_array(tmp_path / "obj.npy")


def test_string_npy_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(DatasetError, match="s.npy.*numeric"):
        read_input_array(tmp_path / "s.npy")


def test_other_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n....")
    with pytest.raises(DatasetError, match=r"pic.png.*\.npy.*IDX"):
        read_input_array(tmp_path / "pic.png")


def test_missing_file(tmp_path: Path) -> None:
    for name in ("none.npy", "none-idx3-ubyte"):
        with pytest.raises(DatasetError, match=f"{name}.*not found"):
            read_input_array(tmp_path / name)


def test_npz_named_npy(tmp_path: Path) -> None:
    with (tmp_path / "z.npy").open("wb") as stream:
        np.savez(stream, a=np.zeros(2))
    with pytest.raises(DatasetError, match="z.npy.*npz"):
        read_input_array(tmp_path / "z.npy")
