"""Dataset .npz files: round trip, optional class names, refusals with the file and key named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from knnserve.data.npz import read_npz
from knnserve.errors import DatasetError


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.standard_normal((12, 5)).astype(np.float32),
        "y_train": np.arange(12) % 3,
        "x_test": rng.standard_normal((6, 5)).astype(np.float32),
        "y_test": np.arange(6) % 3,
    }


def test_round_trip_with_class_names(tmp_path: Path) -> None:
    arrays = _arrays()
    path = tmp_path / "feats.npz"
    np.savez(path, **arrays, class_names=np.array(["a", "b", "c"]))

    splits = read_npz(path)

    for key, value in arrays.items():
        np.testing.assert_array_equal(getattr(splits, key), value)
    assert splits.x_train.dtype == np.float32
    assert splits.y_train.dtype == np.int64
    assert splits.class_names == ("a", "b", "c")


def test_class_names_are_optional(tmp_path: Path) -> None:
    path = tmp_path / "plain.npz"
    np.savez_compressed(path, **_arrays())
    assert read_npz(path).class_names == ()


def test_missing_key_is_named(tmp_path: Path) -> None:
    arrays = _arrays()
    del arrays["y_test"]
    path = tmp_path / "partial.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match="partial.npz.*missing array.*y_test"):
        read_npz(path)


def test_label_count_mismatch(tmp_path: Path) -> None:
    arrays = _arrays()
    arrays["y_train"] = arrays["y_train"][:-2]
    path = tmp_path / "short.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=r"short.npz\[y_train\].*expected 12 labels.*got 10"):
        read_npz(path)


def test_label_beyond_class_names(tmp_path: Path) -> None:
    path = tmp_path / "names.npz"
    np.savez(path, **_arrays(), class_names=np.array(["a", "b"]))
    with pytest.raises(DatasetError, match=r"names.npz\[y_train\].*0\.\.1.*2"):
        read_npz(path)


def test_negative_label(tmp_path: Path) -> None:
    arrays = _arrays()
    arrays["y_test"] = arrays["y_test"] - 1
    path = tmp_path / "neg.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=r"neg.npz\[y_test\]"):
        read_npz(path)


def test_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    arrays = _arrays()
    arrays["x_train"] = np.array([{"a": 1}] * 12, dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=r"pickled.npz\[x_train\]"):
        read_npz(path)


def test_not_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="junk.npz"):
        read_npz(path)


def test_a_single_npy_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "single.npz"
    with path.open("wb") as stream:
        np.save(stream, np.zeros(3))
    with pytest.raises(DatasetError, match="single.npz.*single .npy"):
        read_npz(path)


def test_class_names_must_be_strings(tmp_path: Path) -> None:
    path = tmp_path / "numnames.npz"
    np.savez(path, **_arrays(), class_names=np.arange(3))
    with pytest.raises(DatasetError, match=r"numnames.npz\[class_names\]"):
        read_npz(path)


def test_train_test_sample_shapes_must_agree(tmp_path: Path) -> None:
    arrays = _arrays()
    arrays["x_test"] = arrays["x_test"][:, :4]
    path = tmp_path / "shapes.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=r"shapes.npz\[x_test\]"):
        read_npz(path)
