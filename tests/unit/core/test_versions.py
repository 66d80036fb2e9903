"""The NAME/VERSION/ layout: complete versions only, newest, next, and a bundle's own version."""

from __future__ import annotations

from pathlib import Path

from knnserve.bundle import MANIFEST
from knnserve.versions import bundle_version, newest, next_version, version_number, versions


def _bundle(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / MANIFEST).write_text("{}")
    return folder


def test_versions_are_complete_positive_integer_folders(tmp_path: Path) -> None:
    model = tmp_path / "m"
    one, ten = _bundle(model / "1"), _bundle(model / "10")
    (model / "11").mkdir()  # partial: no manifest yet
    _bundle(model / "0")
    _bundle(model / "latest")
    _bundle(model / ".2")
    assert versions(model) == {1: one, 10: ten}
    assert newest(model) == ten
    assert next_version(model) == model / "11"


def test_an_empty_or_missing_model_folder_starts_at_one(tmp_path: Path) -> None:
    assert versions(tmp_path / "absent") == {} and newest(tmp_path / "absent") is None
    assert next_version(tmp_path / "absent") == tmp_path / "absent" / "1"


def test_a_bundle_outside_the_layout_is_version_one(tmp_path: Path) -> None:
    assert bundle_version(_bundle(tmp_path / "m" / "7")) == 7
    assert bundle_version(_bundle(tmp_path / "my-bundle")) == 1
    assert version_number(tmp_path / "007") == 7 and version_number(tmp_path / "-3") is None
