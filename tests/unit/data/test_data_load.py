"""load_dataset / load_folder: format detection, resolution order, cache location, verification."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits
from data_writers import (
    IdxData,
    make_idx_arrays,
    tiny_idx_spec,
    write_cifar10_folder,
    write_cifar100_folder,
    write_idx_folder,
    write_targz,
)

from knnserve.data import (
    DEFAULT_DATASET,
    default_cache_dir,
    list_datasets,
    load_dataset,
    load_folder,
)
from knnserve.data import registry
from knnserve.data.dataset import array_checksum
from knnserve.data.resolve import candidate_dirs
from knnserve.errors import DatasetError, DatasetNotFoundError, InvalidInputError


def test_idx_folder_is_detected(tmp_path: Path, idx_data: IdxData) -> None:
    write_idx_folder(tmp_path / "mine", idx_data, gz=False)

    dataset = load_folder(tmp_path / "mine")

    assert dataset.name == "mine"
    assert dataset.source == str(tmp_path / "mine")
    assert dataset.image_shape == (28, 28)
    assert dataset.class_names == tuple(str(i) for i in range(10))
    assert dataset.y_train.dtype == np.int64
    assert dataset.checksum == dataset.computed_checksum()
    assert dataset.checksum == array_checksum(
        idx_data.arrays["train_images"],
        idx_data.arrays["train_labels"].astype(np.int64),
        idx_data.arrays["test_images"],
        idx_data.arrays["test_labels"].astype(np.int64),
    )


def test_idx_content_of_a_registered_dataset_is_recognised(
    tmp_path: Path, idx_data: IdxData, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tiny_idx_spec(tmp_path / "server", idx_data, name="tiny-known")
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    write_idx_folder(tmp_path / "copy", idx_data, gz=False)  # uncompressed: same content digests

    dataset = load_folder(tmp_path / "copy")

    assert dataset.name == "tiny-known"
    assert dataset.class_names == registry.FASHION_MNIST.class_names


@pytest.mark.parametrize("where", ["folder", "parent", "archive", "archive-parent"])
def test_cifar10_is_detected(tmp_path: Path, where: str) -> None:
    data = write_cifar10_folder(tmp_path / "src")
    archive = write_targz(data.folder, tmp_path / "cifar-10-binary.tar.gz")
    target = {
        "folder": data.folder,
        "parent": tmp_path / "src",
        "archive": archive,
        "archive-parent": tmp_path,
    }[where]
    if where == "archive-parent":
        shutil.rmtree(tmp_path / "src")

    dataset = load_folder(target)

    assert dataset.image_shape == (32, 32, 3)
    assert dataset.class_names == data.class_names
    np.testing.assert_array_equal(dataset.x_test, data.x_test)
    np.testing.assert_array_equal(dataset.y_train, data.y_train)


def test_cifar100_archive_name(tmp_path: Path) -> None:
    data = write_cifar100_folder(tmp_path / "src")
    archive = write_targz(data.folder, tmp_path / "cifar-100-binary.tar.gz")

    dataset = load_folder(archive)

    assert dataset.name == "cifar-100-binary"
    assert dataset.n_classes == 100
    np.testing.assert_array_equal(dataset.y_test, data.y_test)


def test_npz_file_and_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 255, (8, 4, 4), dtype=np.uint8),
        "y_train": np.arange(8) % 4,
        "x_test": rng.integers(0, 255, (4, 4, 4), dtype=np.uint8),
        "y_test": np.arange(4) % 4,
    }
    (tmp_path / "d").mkdir()
    np.savez(tmp_path / "d" / "toy.npz", **arrays, class_names=np.array(["w", "x", "y", "z"]))

    by_file = load_folder(tmp_path / "d" / "toy.npz")
    by_folder = load_folder(tmp_path / "d")

    assert by_file.name == "toy" and by_file.class_names == ("w", "x", "y", "z")
    assert by_file.checksum == by_folder.checksum


def test_ambiguous_folder(tmp_path: Path) -> None:
    for name in ("a.npz", "b.npz"):
        np.savez(tmp_path / name, x_train=np.zeros((1, 2)), y_train=[0], x_test=np.zeros((1, 2)), y_test=[0])
    with pytest.raises(DatasetError, match="a.npz, b.npz"):
        load_folder(tmp_path)


def test_unrecognised_folder_and_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DatasetNotFoundError, match="IDX"):
        load_folder(tmp_path)
    with pytest.raises(DatasetError, match="notes.txt.*unsupported"):
        load_folder(tmp_path / "notes.txt")
    with pytest.raises(DatasetNotFoundError, match="absent"):
        load_folder(tmp_path / "absent")


def test_load_dataset_data_dir(tmp_path: Path, idx_data: IdxData) -> None:
    write_idx_folder(tmp_path / "dd", idx_data)
    assert load_dataset(data_dir=tmp_path / "dd").source == str(tmp_path / "dd")


def test_name_and_data_dir_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="data_dir"):
        load_dataset("mnist", data_dir=tmp_path)


def test_unknown_name_lists_the_registry() -> None:
    with pytest.raises(InvalidInputError) as info:
        load_dataset("imagenet")
    for name in list_datasets():
        assert name in str(info.value)


def test_registered_names() -> None:
    assert list_datasets()[0] == DEFAULT_DATASET == "fashion-mnist"
    assert set(list_datasets()) == {"fashion-mnist", "mnist", "cifar10", "cifar100", "digits"}
    for name in list_datasets():
        spec = registry.get_spec(name)
        assert len(set(spec.class_names)) == len(spec.class_names) > 1
    assert len(registry.get_spec("cifar100").class_names) == 100
    assert registry.get_spec("fashion-mnist").class_names[0] == "T-shirt/top"


def test_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KNNSERVE_DATA", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("KNNSERVE_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "knnserve"


def test_fashion_mnist_is_searched_in_cache_then_debian(isolated_cache: Path) -> None:
    assert candidate_dirs(registry.FASHION_MNIST) == [
        isolated_cache / "fashion-mnist",
        Path("/usr/share/datasets/fashion-mnist"),
    ]


def _two_copies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A tiny dataset in a system folder, and a different copy of it in the cache."""
    system = tmp_path / "system"
    cache = tmp_path / "cache"
    system_data, cache_data = make_idx_arrays(seed=1), make_idx_arrays(seed=2)
    spec = tiny_idx_spec(system, system_data, name="tiny", system_dirs=(system,))
    # Drop checksums: the two copies differ on purpose, to see which one is read.
    spec = replace(spec, files=tuple(replace(f, md5=None, sha256=None) for f in spec.files))
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    return write_idx_folder(cache / "tiny", cache_data)["train_images"].parent, system


def test_system_folder_is_used_when_cache_is_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_copy, system = _two_copies(tmp_path, monkeypatch)
    shutil.rmtree(cache_copy)
    assert load_dataset("tiny", cache_dir=tmp_path / "cache", download=False).source == str(system)


def test_cache_beats_system_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_copy, system = _two_copies(tmp_path, monkeypatch)

    dataset = load_dataset("tiny", cache_dir=tmp_path / "cache", download=False)

    assert dataset.source == str(cache_copy)
    assert dataset.checksum != load_folder(system).checksum


def test_env_cache_is_used_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_copy, _ = _two_copies(tmp_path, monkeypatch)
    monkeypatch.setenv("KNNSERVE_DATA", str(tmp_path / "cache"))
    assert load_dataset("tiny", download=False).source == str(cache_copy)


def test_missing_dataset_without_download_says_how(tmp_path: Path, isolated_cache: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", download=False)
    message = str(info.value)
    assert str(isolated_cache / "mnist") in message
    assert "knnserve data fetch mnist" in message and "--data-dir DIR" in message
    assert "apt-get" not in message  # only Fashion-MNIST has a Debian package


def test_corrupt_cached_file_fails_verification(
    tmp_path: Path, idx_data: IdxData, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tiny_idx_spec(tmp_path / "server", idx_data)
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    arrays = dict(idx_data.arrays)
    labels = arrays["train_labels"].copy()
    labels[0] = (labels[0] + 1) % 10  # still a valid file, but not the published one
    arrays["train_labels"] = labels
    write_idx_folder(tmp_path / "cache" / spec.name, IdxData(arrays))

    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte.gz.*checksum mismatch"):
        load_dataset(spec.name, cache_dir=tmp_path / "cache", download=False)


def test_md5_only_files_are_verified_before_reading(
    tmp_path: Path, idx_data: IdxData, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tiny_idx_spec(tmp_path / "server", idx_data)
    spec = replace(spec, files=tuple(replace(f, sha256=None) for f in spec.files))
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    folder = tmp_path / "cache" / spec.name
    folder.mkdir(parents=True)
    for f in spec.files:
        (folder / f.name).write_bytes((tmp_path / "server" / f.name).read_bytes())
    assert load_dataset(spec.name, cache_dir=tmp_path / "cache").source == str(folder)

    (folder / spec.files[2].name).write_bytes(b"\x1f\x8b corrupted")
    with pytest.raises(DatasetError, match=f"{spec.files[2].name}.*md5"):
        load_dataset(spec.name, cache_dir=tmp_path / "cache", download=False)


def test_digits() -> None:
    dataset = load_dataset("digits")

    assert dataset.x_train.shape == (1437, 8, 8) and dataset.x_test.shape == (360, 8, 8)
    assert dataset.x_train.dtype == np.uint8
    assert dataset.source == "sklearn.datasets.load_digits"
    raw = load_digits()
    # Scaling is round(v * 255 / 16): 0 -> 0, 16 -> 255, and the multiset of values is kept.
    expected = np.rint(raw.images * 255 / 16).astype(np.uint8)
    both = np.concatenate([dataset.x_train, dataset.x_test])
    assert sorted(map(bytes, both)) == sorted(map(bytes, expected))
    # Stratified: each class's share of the test split is within one sample of 360/1797.
    counts = np.bincount(raw.target)
    test_counts = np.bincount(dataset.y_test, minlength=10)
    assert np.all(np.abs(test_counts - counts * 360 / 1797) <= 1)
    assert load_dataset("digits").checksum == dataset.checksum  # fixed seed
