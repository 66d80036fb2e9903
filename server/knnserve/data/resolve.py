"""Where a registered dataset lives on this machine: the user cache, then system folders."""

from __future__ import annotations

import os
from pathlib import Path

from knnserve.data.registry import DatasetSpec
from knnserve.errors import DatasetNotFoundError

CACHE_ENV = "KNNSERVE_DATA"


def default_cache_dir() -> Path:
    """Return ``$KNNSERVE_DATA`` if set, else ``~/.cache/knnserve``; datasets live in ``<cache>/<name>/``."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "knnserve"


def candidate_dirs(spec: DatasetSpec, cache_dir: str | Path | None = None) -> list[Path]:
    """The folders searched for ``spec``'s files, in order: ``<cache>/<name>`` then system folders."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return [cache / spec.name, *spec.system_dirs]


def find_local(spec: DatasetSpec, cache_dir: str | Path | None = None) -> Path | None:
    """Return the first candidate folder holding all of ``spec``'s files, or None."""
    for folder in candidate_dirs(spec, cache_dir):
        if all((folder / remote.name).is_file() for remote in spec.files):
            return folder
    return None


def how_to_get(spec: DatasetSpec, cache_dir: str | Path | None = None) -> str:
    """Say, in a few lines, how to get ``spec`` onto this machine."""
    cache_folder = candidate_dirs(spec, cache_dir)[0]
    lines = ["Get it with one of:"]
    if spec.debian_package:
        lines.append(
            f"  sudo apt-get install {spec.debian_package}    (Debian/Ubuntu; installs into "
            f"{spec.system_dirs[0]})"
        )
    lines.append(
        f"  knnserve data fetch {spec.name}    (downloads into {cache_folder}; "
        f"set {CACHE_ENV} to move the cache)"
    )
    names = ", ".join(remote.name for remote in spec.files)
    lines.append(f"  --data-dir DIR    (a folder you already have, e.g. holding {names})")
    return "\n".join(lines)


def not_found(spec: DatasetSpec, cache_dir: str | Path | None = None, reason: str = "") -> DatasetNotFoundError:
    """Build the DatasetNotFoundError for ``spec``, listing where it was looked for and how to get it."""
    looked = ", ".join(str(folder) for folder in candidate_dirs(spec, cache_dir))
    because = f" ({reason})" if reason else ""
    return DatasetNotFoundError(
        f"dataset {spec.name!r} not found{because}; looked in {looked}.\n{how_to_get(spec, cache_dir)}"
    )
