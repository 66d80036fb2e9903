"""CIFAR-10/100 binary: folders and .tar.gz archives, HWC layout, labels, malformed files."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from data_writers import cifar_bytes, write_cifar10_folder, write_cifar100_folder, write_targz

from knnserve.data.cifar import CIFAR10, CIFAR100, read_cifar_archive, read_cifar_file, read_cifar_folder
from knnserve.errors import DatasetError


def test_cifar10_folder_round_trip(tmp_path: Path) -> None:
    data = write_cifar10_folder(tmp_path)

    splits = read_cifar_folder(data.folder)

    assert splits.x_train.shape == (15, 32, 32, 3) and splits.x_train.dtype == np.uint8
    assert splits.x_test.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(splits.x_train, data.x_train)
    np.testing.assert_array_equal(splits.y_train, data.y_train)
    np.testing.assert_array_equal(splits.x_test, data.x_test)
    np.testing.assert_array_equal(splits.y_test, data.y_test)
    assert splits.y_train.dtype == np.int64
    assert splits.class_names == data.class_names
    assert splits.x_train.flags.c_contiguous and splits.x_train.flags.writeable


def test_pixels_come_out_hwc(tmp_path: Path) -> None:
    # One record whose red plane is all 10, green all 20, blue all 30: channel order is visible.
    planes = np.concatenate([np.full(1024, v, np.uint8) for v in (10, 20, 30)])
    path = tmp_path / "one.bin"
    path.write_bytes(bytes([7]) + planes.tobytes())

    records = read_cifar_file(path, CIFAR10)

    assert records.images.shape == (1, 32, 32, 3)
    np.testing.assert_array_equal(records.images[0, 5, 9], [10, 20, 30])
    assert records.labels.tolist() == [7]
    assert records.coarse_labels is None


def test_cifar100_folder_fine_labels_and_coarse_available(tmp_path: Path) -> None:
    data = write_cifar100_folder(tmp_path)

    splits = read_cifar_folder(data.folder)
    records = read_cifar_file(data.folder / "train.bin", CIFAR100)

    np.testing.assert_array_equal(splits.x_train, data.x_train)
    np.testing.assert_array_equal(splits.y_train, data.y_train)
    np.testing.assert_array_equal(splits.y_test, data.y_test)
    assert splits.class_names == data.class_names
    assert records.coarse_labels is not None
    np.testing.assert_array_equal(records.coarse_labels, data.coarse_train)


@pytest.mark.parametrize("writer", [write_cifar10_folder, write_cifar100_folder], ids=["cifar10", "cifar100"])
def test_archive_reads_like_the_folder(tmp_path: Path, writer) -> None:
    data = writer(tmp_path / "src")
    archive = write_targz(data.folder, tmp_path / f"{data.folder.name}.tar.gz")

    from_archive = read_cifar_archive(archive)
    from_folder = read_cifar_folder(data.folder)

    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(from_archive, field), getattr(from_folder, field))
    assert from_archive.class_names == data.class_names


def test_folder_without_meta_file_has_no_names(tmp_path: Path) -> None:
    data = write_cifar10_folder(tmp_path)
    (data.folder / CIFAR10.meta_file).unlink()
    assert read_cifar_folder(data.folder).class_names == ()


def test_wrong_record_size_names_file(tmp_path: Path) -> None:
    data = write_cifar10_folder(tmp_path)
    path = data.folder / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DatasetError) as info:
        read_cifar_folder(data.folder)
    assert "data_batch_3.bin" in str(info.value)
    assert "3073-byte" in str(info.value)


def test_empty_batch_is_refused(tmp_path: Path) -> None:
    data = write_cifar10_folder(tmp_path)
    (data.folder / "test_batch.bin").write_bytes(b"")
    with pytest.raises(DatasetError, match="test_batch.bin"):
        read_cifar_folder(data.folder)


def test_cifar10_label_out_of_range_names_file(tmp_path: Path) -> None:
    data = write_cifar10_folder(tmp_path)
    image = np.zeros((1, 32, 32, 3), np.uint8)
    (data.folder / "test_batch.bin").write_bytes(cifar_bytes(image, np.array([10])))
    with pytest.raises(DatasetError, match=r"test_batch.bin.*0\.\.9.*10"):
        read_cifar_folder(data.folder)


def test_cifar100_coarse_label_out_of_range(tmp_path: Path) -> None:
    data = write_cifar100_folder(tmp_path)
    image = np.zeros((1, 32, 32, 3), np.uint8)
    (data.folder / "test.bin").write_bytes(cifar_bytes(image, np.array([5]), coarse=np.array([20])))
    with pytest.raises(DatasetError, match=r"test.bin \(coarse labels\).*0\.\.19"):
        read_cifar_folder(data.folder)


def test_missing_batch_names_it(tmp_path: Path) -> None:
    data = write_cifar10_folder(tmp_path)
    (data.folder / "data_batch_4.bin").unlink()
    with pytest.raises(DatasetError, match="data_batch_4.bin.*not found"):
        read_cifar_folder(data.folder)


def test_meta_file_with_wrong_count(tmp_path: Path) -> None:
    data = write_cifar10_folder(tmp_path)
    (data.folder / "batches.meta.txt").write_text("cat\ndog\n")
    with pytest.raises(DatasetError, match="batches.meta.txt.*expected 10 class names.*got 2"):
        read_cifar_folder(data.folder)


def test_archive_missing_member(tmp_path: Path) -> None:
    data = write_cifar10_folder(tmp_path / "src")
    (data.folder / "test_batch.bin").unlink()
    archive = write_targz(data.folder, tmp_path / "cifar.tar.gz")
    with pytest.raises(DatasetError, match="cifar.tar.gz.*test_batch.bin"):
        read_cifar_archive(archive)


def test_archive_without_cifar_files(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "readme.txt").write_text("hello")
    archive = write_targz(tmp_path / "other", tmp_path / "other.tar.gz")
    with pytest.raises(DatasetError, match="other.tar.gz.*CIFAR binary archive"):
        read_cifar_archive(archive)


def test_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "fake.tar.gz"
    path.write_bytes(b"this is not a tar file at all")
    with pytest.raises(DatasetError, match="fake.tar.gz"):
        read_cifar_archive(path)


def test_truncated_archive(tmp_path: Path) -> None:
    data = write_cifar10_folder(tmp_path / "src")
    archive = write_targz(data.folder, tmp_path / "cut.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DatasetError, match="cut.tar.gz"):
        read_cifar_archive(archive)


def test_archive_ignores_links_and_extracts_nothing(tmp_path: Path) -> None:
    data = write_cifar10_folder(tmp_path / "src")
    archive = tmp_path / "with-link.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(data.folder, arcname=data.folder.name)
        link = tarfile.TarInfo("cifar-10-batches-bin/../../escape.bin")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    before = sorted(p.name for p in tmp_path.iterdir())

    splits = read_cifar_archive(archive)

    assert splits.x_train.shape[0] == data.x_train.shape[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
