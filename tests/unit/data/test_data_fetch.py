"""Downloads through the real urllib code via file:// URLs: success, bad checksums, no network."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from data_writers import IdxData, tiny_idx_spec, write_idx_folder

from knnserve.data import fetch_dataset, load_dataset
from knnserve.data import registry
from knnserve.data.registry import FASHION_MNIST, RemoteFile
from knnserve.errors import DatasetError, DatasetNotFoundError, InvalidInputError


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fetch_downloads_and_verifies(
    tmp_path: Path, idx_data: IdxData, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tiny_idx_spec(tmp_path / "server", idx_data)
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    cache = tmp_path / "cache"

    folder = fetch_dataset(spec.name, cache, progress=False)

    assert folder == cache / spec.name
    assert _leftovers(folder) == sorted(f.name for f in spec.files)
    for remote in spec.files:
        assert (folder / remote.name).read_bytes() == (tmp_path / "server" / remote.name).read_bytes()


def test_fetch_keeps_verified_files(
    tmp_path: Path, idx_data: IdxData, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = tmp_path / "server"
    spec = tiny_idx_spec(server, idx_data)
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    fetch_dataset(spec.name, tmp_path / "cache", progress=False)
    for path in server.iterdir():
        path.unlink()  # the mirror is gone: a second fetch must not need it

    folder = fetch_dataset(spec.name, tmp_path / "cache", progress=False)

    assert _leftovers(folder) == sorted(f.name for f in spec.files)


def test_fetch_replaces_a_corrupt_cached_file(
    tmp_path: Path, idx_data: IdxData, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tiny_idx_spec(tmp_path / "server", idx_data)
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    folder = fetch_dataset(spec.name, tmp_path / "cache", progress=False)
    victim = folder / spec.files[0].name
    victim.write_bytes(b"garbage")

    fetch_dataset(spec.name, tmp_path / "cache", progress=False)

    assert victim.read_bytes() == (tmp_path / "server" / victim.name).read_bytes()


def test_checksum_mismatch_leaves_nothing_behind(
    tmp_path: Path, idx_data: IdxData, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tiny_idx_spec(tmp_path / "server", idx_data)
    bad = replace(spec.files[0], md5="0" * 32)
    spec = replace(spec, files=(bad, *spec.files[1:]))
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    cache = tmp_path / "cache"

    with pytest.raises(DatasetError) as info:
        fetch_dataset(spec.name, cache, progress=False)

    assert not isinstance(info.value, DatasetNotFoundError)
    assert bad.name in str(info.value) and "0" * 32 in str(info.value)
    assert _leftovers(cache / spec.name) == []


def test_content_checksum_is_checked_too(
    tmp_path: Path, idx_data: IdxData, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tiny_idx_spec(tmp_path / "server", idx_data)
    bad = replace(spec.files[1], sha256="f" * 64)
    spec = replace(spec, files=(spec.files[0], bad, *spec.files[2:]))
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    cache = tmp_path / "cache"

    with pytest.raises(DatasetError, match="decompressed sha256"):
        fetch_dataset(spec.name, cache, progress=False)

    # The first file verified and stays; the bad one left no temp file.
    assert _leftovers(cache / spec.name) == [spec.files[0].name]


def test_real_fashion_checksums_reject_other_files(tmp_path: Path, idx_data: IdxData) -> None:
    write_idx_folder(tmp_path / "mirror", idx_data, gz=True)
    cache = tmp_path / "cache"

    with pytest.raises(DatasetError, match="published checksum"):
        fetch_dataset("fashion-mnist", cache, base_url=(tmp_path / "mirror").as_uri(), progress=False)

    assert _leftovers(cache / "fashion-mnist") == []


def test_unreachable_url_says_how_to_get_the_data(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(DatasetNotFoundError) as info:
        fetch_dataset("fashion-mnist", cache, base_url=(tmp_path / "nowhere").as_uri(), progress=False)
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "knnserve data fetch fashion-mnist" in message
    assert "--data-dir DIR" in message
    assert "download failed" in message
    assert _leftovers(cache / "fashion-mnist") == []


def test_unreachable_host_is_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 9 on localhost: connection refused, no traffic leaves the machine.
    spec = replace(
        registry.MNIST,
        name="offline",
        files=tuple(replace(f, urls=(f"http://127.0.0.1:9/{f.name}",)) for f in registry.MNIST.files),
    )
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    with pytest.raises(DatasetNotFoundError, match="knnserve data fetch offline"):
        fetch_dataset(spec.name, tmp_path / "cache", progress=False, timeout=5)


def test_second_mirror_is_used_when_the_first_fails(
    tmp_path: Path, idx_data: IdxData, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tiny_idx_spec(tmp_path / "server", idx_data)
    files = tuple(
        replace(f, urls=((tmp_path / "gone" / f.name).as_uri(), *f.urls)) for f in spec.files
    )
    spec = replace(spec, files=files)
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)

    folder = fetch_dataset(spec.name, tmp_path / "cache", progress=False)

    assert _leftovers(folder) == sorted(f.name for f in spec.files)


def test_load_dataset_downloads_when_missing(
    tmp_path: Path, idx_data: IdxData, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tiny_idx_spec(tmp_path / "server", idx_data)
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)

    dataset = load_dataset(spec.name, cache_dir=tmp_path / "cache")

    assert dataset.source == str(tmp_path / "cache" / spec.name)
    np.testing.assert_array_equal(dataset.x_train, idx_data.arrays["train_images"])
    assert dataset.class_names == FASHION_MNIST.class_names


def test_builtin_dataset_has_nothing_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="digits"):
        fetch_dataset("digits", tmp_path)


def test_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="fashion-mnist"):
        fetch_dataset("imagenet", tmp_path)


def test_progress_bar_shows_on_request(
    tmp_path: Path, idx_data: IdxData, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    spec = tiny_idx_spec(tmp_path / "server", idx_data)
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    fetch_dataset(spec.name, tmp_path / "cache", progress=True)
    assert spec.files[0].name in capsys.readouterr().err


def test_registry_files_have_published_checksums() -> None:
    for spec in registry.REGISTRY.values():
        for remote in spec.files:
            assert remote.md5 is not None and len(remote.md5) == 32, (spec.name, remote.name)
            assert remote.urls and all(url.endswith("/" + remote.name) for url in remote.urls)
            assert isinstance(remote, RemoteFile)
