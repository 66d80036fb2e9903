"""The NAME/VERSION/ layout of bundles on disk: which folders are versions, which is newest, which comes next.

A model's versions are the folders under ``MODELS/NAME/`` named by a positive integer that hold a
complete bundle (a manifest: bundles are written atomically, so a folder without one is partial).
The server scans this layout; ``tune``, ``demo`` and batch jobs name versions by it.
"""

from __future__ import annotations

from pathlib import Path

from knnserve.bundle import MANIFEST

# A bundle served from its own folder (``serve --model``), not from a NAME/VERSION/ layout.
SINGLE_BUNDLE_VERSION = 1


def version_number(folder: Path) -> int | None:
    """The version a folder's name gives (a positive integer), else None."""
    name = folder.name
    return int(name) if name.isdigit() and int(name) >= 1 else None


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds a whole bundle (its manifest is written last)."""
    return (folder / MANIFEST).is_file()


def versions(model_dir: Path) -> dict[int, Path]:
    """Every complete version under ``model_dir`` (one model's folder), by number, ascending."""
    if not model_dir.is_dir():
        return {}
    found = {number: folder for folder in model_dir.iterdir()
             if (number := version_number(folder)) is not None and folder.is_dir() and is_complete(folder)}
    return dict(sorted(found.items()))


def newest(model_dir: Path) -> Path | None:
    """The newest complete version under ``model_dir``, or None when it has none."""
    found = versions(model_dir)
    return found[max(found)] if found else None


def next_version(model_dir: Path) -> Path:
    """The folder of the version after the newest under ``model_dir`` (1 when there is none)."""
    return model_dir / str(max(versions(model_dir), default=0) + 1)


def bundle_version(folder: Path) -> int:
    """A bundle's version as the server serves it: its folder's number under NAME/VERSION/, else 1 (``serve --model``)."""
    number = version_number(Path(folder).resolve())
    return number if number is not None else SINGLE_BUNDLE_VERSION


__all__ = ["SINGLE_BUNDLE_VERSION", "bundle_version", "is_complete", "newest", "next_version", "version_number", "versions"]
