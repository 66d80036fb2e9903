"""Downloading a registered dataset into the cache: temp file, verify, then ``os.replace``."""

from __future__ import annotations

import hashlib
import http.client
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from knnserve.atomic import atomic_file
from knnserve.data.checksums import content_sha256, verify_file
from knnserve.data.files import read_content
from knnserve.data.registry import DatasetSpec, RemoteFile, get_spec
from knnserve.data.resolve import candidate_dirs, not_found
from knnserve.errors import DatasetError, InvalidInputError

_CHUNK = 1 << 20
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError, ValueError)


class _AttemptFailed(Exception):
    """One mirror failed; ``bad_checksum`` tells a wrong file from an unreachable one."""

    def __init__(self, message: str, bad_checksum: bool) -> None:
        super().__init__(message)
        self.bad_checksum = bad_checksum


def fetch_dataset(
    name: str,
    cache_dir: str | Path | None = None,
    *,
    base_url: str | None = None,
    progress: bool | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download a registered dataset into ``<cache>/<name>/`` and return that folder.

    Files already there and verified are kept. Each file is written to a temp file
    beside its target, verified against the registry's checksums, then moved into
    place with ``os.replace``, so a failed download leaves nothing behind.

    Parameters
    ----------
    name
        A registered dataset with files (see ``list_datasets``).
    cache_dir
        Cache root; default ``default_cache_dir()``.
    base_url
        Replaces the registry's mirrors: each file is fetched from ``<base_url>/<file name>``
        (any URL urllib opens, ``file://`` included).
    progress
        Show a tqdm bar per file; default: only when stderr is a terminal.
    timeout
        Seconds a connection may stay silent before the mirror counts as unreachable.
    """
    spec = get_spec(name)
    if not spec.files:
        raise InvalidInputError("dataset", "a dataset that is downloaded", f"{name!r}, which needs no download")
    folder = candidate_dirs(spec, cache_dir)[0]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DatasetError(f"{folder}: cannot create the cache folder ({error})") from error
    show = sys.stderr.isatty() if progress is None else progress
    for remote in spec.files:
        target = folder / remote.name
        if target.is_file() and _is_valid(target, remote):
            continue
        urls = (f"{base_url.rstrip('/')}/{remote.name}",) if base_url else remote.urls
        _download(spec, remote, urls, target, cache_dir, show, timeout)
    return folder


def _is_valid(path: Path, remote: RemoteFile) -> bool:
    try:
        verify_file(path, md5=remote.md5, sha256=remote.sha256)
    except DatasetError:
        return False
    return True


def _download(
    spec: DatasetSpec,
    remote: RemoteFile,
    urls: tuple[str, ...],
    target: Path,
    cache_dir: str | Path | None,
    show: bool,
    timeout: float,
) -> None:
    failures: list[_AttemptFailed] = []
    for url in urls:
        try:
            _download_one(url, remote, target, show, timeout)
            return
        except _AttemptFailed as failure:
            failures.append(failure)
    details = "; ".join(str(f) for f in failures)
    if any(f.bad_checksum for f in failures):
        raise DatasetError(f"{remote.name}: no mirror served a file with the published checksum: {details}")
    raise not_found(spec, cache_dir, reason=f"download failed: {details}")


def _download_one(url: str, remote: RemoteFile, target: Path, show: bool, timeout: float) -> None:
    try:
        with atomic_file(target, "wb", suffix=".part") as out:
            md5 = _copy(url, out, remote.name, show, timeout)
            out.flush()
            if remote.md5 is not None and md5 != remote.md5.lower():
                raise _AttemptFailed(f"{url}: expected md5 {remote.md5}, got {md5}", bad_checksum=True)
            if remote.sha256 is not None:
                try:
                    actual = content_sha256(read_content(Path(out.name)))
                except DatasetError as error:
                    raise _AttemptFailed(f"{url}: {error}", bad_checksum=True) from error
                if actual != remote.sha256.lower():
                    raise _AttemptFailed(
                        f"{url}: expected decompressed sha256 {remote.sha256}, got {actual}", bad_checksum=True
                    )
    except OSError as error:
        raise DatasetError(f"{target.parent}: cannot write to the cache folder ({error})") from error


def _copy(url: str, out: BinaryIO, label: str, show: bool, timeout: float) -> str:
    """Stream ``url`` into ``out`` and return the md5 of the bytes received."""
    md5 = hashlib.md5()
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except _NETWORK_ERRORS as error:
        raise _AttemptFailed(f"{url}: {error}", bad_checksum=False) from error
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not show) as bar:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except _NETWORK_ERRORS as error:
                    raise _AttemptFailed(f"{url}: {error}", bad_checksum=False) from error
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as error:
                    raise DatasetError(f"{label}: cannot write the download to the cache ({error})") from error
                md5.update(chunk)
                bar.update(len(chunk))
    return md5.hexdigest()
