"""Turning a dataset name or a folder into a verified ``Dataset``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from knnserve.data.arrays import Splits, default_class_names
from knnserve.data.checksums import check_digest, verify_file
from knnserve.data.cifar import CIFAR10, CIFAR100, detect_variant, read_cifar_archive, read_cifar_folder
from knnserve.data.dataset import Dataset
from knnserve.data.fetch import fetch_dataset
from knnserve.data.idx import IDX_FILES, find_idx_files, read_idx_folder
from knnserve.data.npz import read_npz
from knnserve.data.registry import DEFAULT_DATASET, REGISTRY, DatasetSpec, get_spec
from knnserve.data.resolve import find_local, not_found
from knnserve.errors import DatasetError, DatasetNotFoundError, InvalidInputError

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_FORMATS = (
    "MNIST-style IDX files (train-images-idx3-ubyte[.gz] and its three siblings), "
    f"a CIFAR binary folder ({CIFAR10.folder}/ or {CIFAR100.folder}/) or its .tar.gz, "
    "or an .npz with x_train, y_train, x_test, y_test"
)


def load_dataset(
    name: str | None = None,
    *,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
) -> Dataset:
    """Load a registered dataset by name, or any supported folder; default Fashion-MNIST.

    Parameters
    ----------
    name
        A registered name (``list_datasets()``); None means ``"fashion-mnist"`` unless
        ``data_dir`` is given.
    data_dir
        A folder or file in a supported format, read with ``load_folder``; excludes ``name``.
    cache_dir
        Cache root searched first and downloaded into; default ``default_cache_dir()``.
    download
        Fetch a registered dataset found nowhere locally; when False such a dataset
        raises DatasetNotFoundError saying how to get it.
    """
    if data_dir is not None:
        if name is not None:
            raise InvalidInputError(
                "data_dir", "a dataset name or a data_dir, not both", f"name={name!r}, data_dir={str(data_dir)!r}"
            )
        return load_folder(data_dir)
    spec = get_spec(name or DEFAULT_DATASET)
    if not spec.files:
        return _to_dataset(spec.name, spec.reader(None), spec.class_names, spec.builtin_source or spec.name)
    folder = find_local(spec, cache_dir)
    if folder is None:
        if not download:
            raise not_found(spec, cache_dir)
        folder = fetch_dataset(spec.name, cache_dir)
    splits = _read_verified(spec, folder)
    return _to_dataset(spec.name, splits, splits.class_names or spec.class_names, str(folder))


def load_folder(path: str | Path) -> Dataset:
    """Load a dataset from a folder or file a user names, detecting the format.

    Reads MNIST-style IDX folders (``.gz`` or not), CIFAR-10/100 binary folders and
    their ``.tar.gz`` archives, and ``.npz`` files with x_train, y_train, x_test, y_test.
    IDX files whose content matches a registered dataset get its name and class names.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetNotFoundError(f"{path}: no such file or folder; expected {_FORMATS}")
    splits = _read_any(path)
    name = path.name
    for suffix in (*_ARCHIVE_SUFFIXES, ".npz"):
        name = name.removesuffix(suffix)
    class_names = splits.class_names
    known = _recognise(splits)
    if known is not None:
        name, class_names = known.name, known.class_names
    if not class_names:
        class_names = default_class_names(splits.y_train, splits.y_test)
    return _to_dataset(name, splits, class_names, str(path))


def _read_any(path: Path) -> Splits:
    if path.is_file():
        if path.name.endswith(".npz"):
            return read_npz(path)
        if path.name.endswith(_ARCHIVE_SUFFIXES):
            return read_cifar_archive(path)
        raise DatasetError(f"{path}: unsupported file; expected {_FORMATS}")
    if find_idx_files(path):
        return read_idx_folder(path)
    if detect_variant(child.name for child in path.iterdir()) is not None:
        return read_cifar_folder(path)
    for variant in (CIFAR10, CIFAR100):
        if (path / variant.folder).is_dir():
            return read_cifar_folder(path / variant.folder)
    archives = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(_ARCHIVE_SUFFIXES))
    npzs = sorted(p for p in path.glob("*.npz") if p.is_file())
    candidates = archives + npzs
    if len(candidates) == 1:
        return _read_any(candidates[0])
    if candidates:
        names = ", ".join(p.name for p in candidates)
        raise DatasetError(f"{path}: several dataset files ({names}); name the one to load")
    raise DatasetNotFoundError(f"{path}: no dataset found; expected {_FORMATS}")


def _read_verified(spec: DatasetSpec, folder: Path) -> Splits:
    """Read ``spec`` from ``folder`` and check the registry's checksums, decompressing once."""
    for remote in spec.files:
        if remote.sha256 is None:
            verify_file(folder / remote.name, md5=remote.md5)
    splits = spec.reader(folder)
    for remote in spec.files:
        if remote.sha256 is None:
            continue
        actual = splits.content_sha256.get(remote.name.removesuffix(".gz"))
        if actual is None:
            verify_file(folder / remote.name, sha256=remote.sha256)
        else:
            check_digest(actual, remote.sha256, folder / remote.name, "sha256 of the decompressed content")
    return splits


def _recognise(splits: Splits) -> DatasetSpec | None:
    """The registered dataset whose published content digests all match ``splits``, if any."""
    if set(splits.content_sha256) != set(IDX_FILES.values()):
        return None
    for spec in REGISTRY.values():
        expected = {r.name.removesuffix(".gz"): r.sha256 for r in spec.files if r.sha256}
        if expected and all(splits.content_sha256.get(k) == v for k, v in expected.items()):
            return spec
    return None


def _to_dataset(name: str, splits: Splits, class_names: tuple[str, ...], source: str) -> Dataset:
    for labels, which in ((splits.y_train, "training"), (splits.y_test, "test")):
        if labels.size and int(labels.max()) >= len(class_names):
            raise DatasetError(
                f"{source}: expected {which} labels below {len(class_names)} (the number of class "
                f"names), got {int(labels.max())}"
            )
    dataset = Dataset(
        name=name,
        x_train=splits.x_train,
        y_train=splits.y_train,
        x_test=splits.x_test,
        y_test=splits.y_test,
        class_names=tuple(class_names),
        source=source,
    )
    return replace(dataset, checksum=dataset.computed_checksum())
