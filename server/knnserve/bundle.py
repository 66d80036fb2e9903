"""Model bundles on disk: a JSON manifest, a FAISS index file and numpy arrays; atomic save, verified load.

Layout of a bundle folder::

    manifest.json   pydantic ``Manifest``; written last, so a folder without it is partial
    index.faiss     faiss.write_index output
    labels.npy      int64 class index of each indexed vector, in index id order
    <name>.npz      optional array groups, no pickle: knn_preprocess.npz (PCA etc.), linear.npz (W, b, its preprocessing)
    extractor.onnx  optional: the feature extractor (an ONNX image network), described by ``Manifest.extractor``

Every file is listed in the manifest with its size and sha256 and verified when the bundle is loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from knnserve import __version__
from knnserve.atomic import exchange, umask
from knnserve.errors import BundleError
from knnserve.features.extractor import ExtractorRecord
from knnserve.index import backend
from knnserve_client.wire.query import KnnQuery

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"
LABELS_FILE = "labels.npy"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FileEntry(_Frozen):
    """Checksum and size of one file of the bundle."""

    sha256: str
    bytes: int


class DatasetInfo(_Frozen):
    """Which data the bundle was trained on."""

    name: str
    checksum: str
    source: str = ""
    n_train: int
    n_test: int = 0


class IndexRecord(_Frozen):
    """The FAISS index as the manifest records it: what was asked for, what was built, how vectors are stored."""

    spec: str
    factory: str
    metric: Literal["l2", "l1"]
    storage: str
    kind: str
    build_params: dict[str, Any] = Field(default_factory=dict)
    dim: int
    ntotal: int
    train_seconds: float = 0.0
    add_seconds: float = 0.0
    serialized_bytes: int = 0


class Manifest(_Frozen):
    """Everything needed to serve and audit a model, stored as ``manifest.json``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    knnserve_version: str = __version__
    dataset: DatasetInfo | None = None
    input_shape: tuple[int, ...]
    input_dtype: Literal["uint8", "float32"]
    class_names: tuple[str, ...]
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    index: IndexRecord
    # The model's default query (what a request that leaves a field unset gets).
    knn: KnnQuery = Field(default_factory=lambda: KnnQuery(k=5, weights="uniform", tie_break="nearest"))
    heads: tuple[str, ...] = ("knn",)
    linear: dict[str, Any] | None = None
    # The feature extractor the index and the linear head work behind (None: they read the input rows).
    # Bundles written before it existed have none and load as before.
    extractor: ExtractorRecord | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, FileEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class LoadedBundle:
    """A verified bundle read back from disk."""

    path: Path
    manifest: Manifest
    index: backend.Index
    labels: np.ndarray
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    # Other files the manifest lists (the extractor's ONNX graph), verified, as bytes.
    blobs: dict[str, bytes] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# A staging folder is named after the process writing it, so the next save into the same folder
# can tell an abandoned one (its process is gone: killed mid-write) from one still being written.
_STAGING = re.compile(r"\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)-[^/]*")
# Staging folders of older knnserve versions carry no pid: removed once this old.
STALE_UNTAGGED_S = 24 * 3600

log = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def remove_stale_staging(parent: Path, name: str) -> list[Path]:
    """Remove the staging and retired folders of ``name`` left in ``parent`` by processes that are gone.

    Returns what was removed. A folder whose process still runs (another save in progress) is kept.
    """
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    for entry in parent.iterdir():
        if not entry.is_dir() or not (entry.name.startswith(f".{name}.tmp-") or entry.name.startswith(f".{name}.old-")):
            continue
        match = _STAGING.fullmatch(entry.name)
        if match is not None and match["name"] == name:
            stale = not _alive(int(match["pid"]))
        else:
            stale = time.time() - entry.stat().st_mtime > STALE_UNTAGGED_S
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
            log.warning("removed %s: a staging folder left by an interrupted save", entry)
    return removed


def save_bundle(
    path: str | Path,
    manifest: Manifest,
    index: backend.Index,
    labels: np.ndarray,
    *,
    arrays: dict[str, dict[str, np.ndarray]] | None = None,
    blobs: dict[str, bytes] | None = None,
    overwrite: bool = False,
) -> Manifest:
    """Write a bundle atomically: everything goes to a temporary sibling folder, then one rename.

    Returns the manifest as written (with ``files`` filled in). An existing bundle at ``path`` is
    replaced only with ``overwrite=True``, in one atomic exchange where the system supports it, so
    a reader finds the old or the new bundle at every moment, never a half-written folder or none.
    Staging folders abandoned by an earlier save into the same folder (a killed ``train``) are
    removed first.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise BundleError(f"{target}: already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if labels.shape != (index.ntotal,):
        raise BundleError(f"labels: expected shape ({index.ntotal},) to match the index, got {labels.shape}")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(target.parent, target.name)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        # mkdtemp makes the folder private (0700); a bundle should be as readable as any folder we create.
        staging.chmod(0o777 & ~umask())
        backend.write_index(index, staging / INDEX_FILE)
        np.save(staging / LABELS_FILE, labels, allow_pickle=False)
        for name, group in (arrays or {}).items():
            np.savez(staging / f"{name}.npz", **group)
        for name, data in (blobs or {}).items():
            if name in (MANIFEST, INDEX_FILE, LABELS_FILE) or "/" in name or name.endswith(".npz"):
                raise BundleError(f"{name}: not a name a bundle file may take")
            (staging / name).write_bytes(data)
        files = {
            entry.name: FileEntry(sha256=_sha256(entry), bytes=entry.stat().st_size)
            for entry in sorted(staging.iterdir())
        }
        written = manifest.model_copy(update={"files": files})
        (staging / MANIFEST).write_text(written.model_dump_json(indent=2) + "\n")
        for entry in staging.iterdir():
            with entry.open("rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(staging)
        if target.exists():
            if exchange(staging, target):
                shutil.rmtree(staging, ignore_errors=True)  # now holds the old bundle
            else:
                retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-{os.getpid()}-", dir=target.parent))
                os.replace(target, retired / "bundle")
                os.replace(staging, target)
                shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return written


def validation_summary(error: ValidationError) -> str:
    """pydantic's errors on one line: ``knn.k: expected an integer >= 1, got 0; ...``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        field, colon, rest = message.partition(": ")
        if colon and field.isidentifier():  # an InvalidInputError from inside a nested type names its own field
            where, message = f"{where}.{field}" if where else field, rest
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def read_manifest(path: str | Path) -> Manifest:
    """Read and validate a bundle's manifest (schema version first), without loading the index."""
    folder = Path(path)
    manifest_path = folder / MANIFEST
    if not folder.is_dir():
        raise BundleError(f"{folder}: not a folder; a bundle is a folder holding {MANIFEST}")
    if not manifest_path.is_file():
        raise BundleError(f"{folder}: {MANIFEST} is missing; not a knnserve bundle, or a partial one")
    try:
        raw = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path}: not valid JSON ({exc})") from exc
    version = raw.get("schema_version") if isinstance(raw, dict) else None
    if version != SCHEMA_VERSION:
        raise BundleError(
            f"{manifest_path}: schema_version {version!r} is not supported; this knnserve reads version {SCHEMA_VERSION}"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise BundleError(f"{manifest_path}: invalid manifest: {validation_summary(exc)}") from exc


def check_files(folder: Path, manifest: Manifest) -> None:
    """Check that every file the manifest lists exists with its recorded size (no file is read)."""
    for required in (INDEX_FILE, LABELS_FILE):
        if required not in manifest.files:
            raise BundleError(f"{folder / MANIFEST}: lists no {required}")
    for name, entry in manifest.files.items():
        file_path = folder / name
        if not file_path.is_file():
            raise BundleError(f"{file_path}: missing (the manifest lists it); the bundle is partial")
        size = file_path.stat().st_size
        if size != entry.bytes:
            raise BundleError(f"{file_path}: expected {entry.bytes} bytes, found {size}; the bundle is corrupt")


def verify_checksums(folder: Path, manifest: Manifest) -> None:
    """Check every file the manifest lists against its recorded sha256, in the manifest's order."""
    for name, entry in manifest.files.items():
        if _sha256(folder / name) != entry.sha256:
            raise BundleError(f"{folder / name}: sha256 does not match the manifest; the bundle is corrupt")


@dataclass(frozen=True)
class _Parts:
    index: backend.Index
    labels: np.ndarray
    arrays: dict[str, dict[str, np.ndarray]]
    blobs: dict[str, bytes]


def _read_parts(folder: Path, manifest: Manifest, mmap: bool) -> _Parts:
    try:
        index = backend.read_index(folder / INDEX_FILE, mmap=mmap)
    except ValueError as exc:
        raise BundleError(f"{folder / INDEX_FILE}: {exc}") from exc
    try:
        labels = np.load(folder / LABELS_FILE, allow_pickle=False)
        arrays = {}
        blobs = {}
        for name in manifest.files:
            if name.endswith(".npz"):
                with np.load(folder / name, allow_pickle=False) as group:
                    arrays[name[: -len(".npz")]] = {key: group[key] for key in group.files}
            elif name not in (INDEX_FILE, LABELS_FILE):
                blobs[name] = (folder / name).read_bytes()
    except (OSError, ValueError) as exc:
        raise BundleError(f"{folder}: could not read arrays ({exc})") from exc
    return _Parts(index, labels, arrays, blobs)


def load_bundle(path: str | Path, *, mmap: bool = False) -> LoadedBundle:
    """Load a bundle, verifying schema version, checksums, and index/labels/manifest dimensions.

    ``mmap``: map the index file instead of reading it into memory (``backend.read_index``).

    Every file's presence and size are checked before any is read; the checksums are computed on a
    helper thread while this one reads the files (hashlib and FAISS's reader both release the GIL, so
    the two overlap where a core is idle; on the shared, busy 2-core machine no gain was measured:
    docs/batch.md), and nothing read is returned or inspected until every checksum has matched. A
    corrupt file is reported as such (sha256), even when reading it failed first.
    """
    folder = Path(path)
    manifest = read_manifest(folder)
    check_files(folder, manifest)
    with ThreadPoolExecutor(1, thread_name_prefix="bundle-verify") as pool:
        verified = pool.submit(verify_checksums, folder, manifest)
        try:
            parts = _read_parts(folder, manifest, mmap)
        except BaseException:
            verified.result()  # a checksum that does not match explains the failure better than the reader's error
            raise
        verified.result()
    index, labels = parts.index, parts.labels
    if index.d != manifest.index.dim or index.ntotal != manifest.index.ntotal:
        raise BundleError(
            f"{folder / INDEX_FILE}: index has dim {index.d} and {index.ntotal} vectors, the manifest says "
            f"dim {manifest.index.dim} and {manifest.index.ntotal}"
        )
    if labels.shape != (index.ntotal,) or labels.dtype.kind not in "iu":
        raise BundleError(f"{folder / LABELS_FILE}: expected {index.ntotal} integer labels, got {labels.shape} {labels.dtype}")
    if labels.size and not 0 <= labels.min() <= labels.max() < len(manifest.class_names):
        raise BundleError(f"{folder / LABELS_FILE}: labels outside 0..{len(manifest.class_names) - 1}")
    if manifest.extractor is not None and manifest.extractor.file not in parts.blobs:
        raise BundleError(f"{folder / MANIFEST}: extractor.file {manifest.extractor.file!r} is not among the files it lists")
    return LoadedBundle(path=folder, manifest=manifest, index=index, labels=labels.astype(np.int64), arrays=parts.arrays,
                        blobs=parts.blobs)
