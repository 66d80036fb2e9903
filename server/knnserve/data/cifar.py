"""CIFAR-10 and CIFAR-100 binary versions, from the extracted folder or the original .tar.gz."""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from knnserve.data.arrays import Splits, as_labels
from knnserve.data.files import read_bytes
from knnserve.errors import DatasetError

PIXELS = 3 * 32 * 32


@dataclass(frozen=True)
class CifarVariant:
    """File layout and record format of one CIFAR binary release."""

    name: str
    folder: str
    label_bytes: int  # CIFAR-100 records carry a coarse then a fine label byte
    n_classes: int
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str

    @property
    def record_size(self) -> int:
        """Bytes per image record: label byte(s) then 3072 pixel bytes."""
        return self.label_bytes + PIXELS

    @property
    def files(self) -> tuple[str, ...]:
        """The data files that must be present."""
        return (*self.train_files, self.test_file)


CIFAR10 = CifarVariant(
    name="cifar10",
    folder="cifar-10-batches-bin",
    label_bytes=1,
    n_classes=10,
    train_files=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    test_file="test_batch.bin",
    meta_file="batches.meta.txt",
)
CIFAR100 = CifarVariant(
    name="cifar100",
    folder="cifar-100-binary",
    label_bytes=2,
    n_classes=100,
    train_files=("train.bin",),
    test_file="test.bin",
    meta_file="fine_label_names.txt",
)
CIFAR100_COARSE_CLASSES = 20


@dataclass(frozen=True)
class CifarRecords:
    """Images (N, 32, 32, 3) uint8 HWC, labels int64 (fine ones for CIFAR-100), coarse labels or None."""

    images: np.ndarray
    labels: np.ndarray
    coarse_labels: np.ndarray | None


def parse_records(data: bytes, variant: CifarVariant, source: str | Path) -> CifarRecords:
    """Parse the fixed-size records of one CIFAR ``.bin`` file; errors name ``source``."""
    size = variant.record_size
    if len(data) == 0 or len(data) % size:
        raise DatasetError(
            f"{source}: expected a whole, non-zero number of {size}-byte {variant.name} records "
            f"({variant.label_bytes} label byte(s) + {PIXELS} pixel bytes), got {len(data)} bytes"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, size)
    # Pixels are stored channel-major (1024 R, 1024 G, 1024 B); serve HWC like an image.
    images = records[:, variant.label_bytes :].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = as_labels(records[:, variant.label_bytes - 1], source, variant.n_classes)
    coarse = None
    if variant.label_bytes == 2:
        coarse = as_labels(records[:, 0], f"{source} (coarse labels)", CIFAR100_COARSE_CLASSES)
    return CifarRecords(images=images, labels=labels, coarse_labels=coarse)


def read_cifar_file(path: str | Path, variant: CifarVariant) -> CifarRecords:
    """Read one CIFAR ``.bin`` file (e.g. ``data_batch_1.bin`` or ``train.bin``)."""
    path = Path(path)
    data = read_bytes(path)
    records = parse_records(data, variant, path)
    coarse = None if records.coarse_labels is None else records.coarse_labels.copy()
    return CifarRecords(np.ascontiguousarray(records.images), records.labels.copy(), coarse)


def parse_class_names(text: bytes, source: str | Path, expected: int) -> tuple[str, ...]:
    """Parse a CIFAR label-names file: one name a line, blank lines ignored."""
    names = tuple(line.strip() for line in text.decode("utf-8", "replace").splitlines() if line.strip())
    if len(names) != expected:
        raise DatasetError(f"{source}: expected {expected} class names, one a line, got {len(names)}")
    return names


def detect_variant(names: Iterable[str]) -> CifarVariant | None:
    """Return the CIFAR variant whose first training file is among ``names`` (base names)."""
    present = set(names)
    for variant in (CIFAR10, CIFAR100):
        if variant.train_files[0] in present:
            return variant
    return None


def read_cifar_folder(folder: str | Path, variant: CifarVariant | None = None) -> Splits:
    """Read an extracted CIFAR binary folder (``cifar-10-batches-bin`` or ``cifar-100-binary``)."""
    folder = Path(folder)
    if variant is None:
        variant = detect_variant(p.name for p in folder.iterdir()) if folder.is_dir() else None
        if variant is None:
            raise DatasetError(
                f"{folder}: expected a CIFAR binary folder holding {CIFAR10.train_files[0]} "
                f"(CIFAR-10) or {CIFAR100.train_files[0]} (CIFAR-100)"
            )
    contents: dict[str, tuple[bytes, str]] = {}
    for name in (*variant.files, variant.meta_file):
        path = folder / name
        if path.is_file() or name != variant.meta_file:
            contents[name] = (read_bytes(path), str(path))
    return _assemble(variant, contents)


def read_cifar_archive(path: str | Path) -> Splits:
    """Read a CIFAR binary ``.tar.gz`` (as published) in one pass, without extracting to disk."""
    path = Path(path)
    wanted = {*CIFAR10.files, CIFAR10.meta_file, *CIFAR100.files, CIFAR100.meta_file}
    contents: dict[str, tuple[bytes, str]] = {}
    try:
        # Stream mode reads the gzip once; random access would re-decompress per member.
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted:
                    stream = archive.extractfile(member)
                    if stream is not None:
                        contents[base] = (stream.read(), f"{path}:{member.name}")
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise DatasetError(f"{path}: expected a readable .tar.gz archive ({error})") from error
    variant = detect_variant(contents)
    if variant is None:
        raise DatasetError(
            f"{path}: expected a CIFAR binary archive containing {CIFAR10.folder}/"
            f"{CIFAR10.train_files[0]} or {CIFAR100.folder}/{CIFAR100.train_files[0]}, found neither"
        )
    missing = [name for name in variant.files if name not in contents]
    if missing:
        raise DatasetError(f"{path}: archive lacks {', '.join(missing)} of {variant.folder}/")
    return _assemble(variant, contents)


def _assemble(variant: CifarVariant, contents: Mapping[str, tuple[bytes, str]]) -> Splits:
    train = [_parse(contents, name, variant) for name in variant.train_files]
    test = _parse(contents, variant.test_file, variant)
    class_names: tuple[str, ...] = ()
    if variant.meta_file in contents:
        class_names = parse_class_names(*contents[variant.meta_file], expected=variant.n_classes)
    return Splits(
        x_train=_stack([r.images for r in train]),
        y_train=np.concatenate([r.labels for r in train]),
        x_test=_stack([test.images]),
        y_test=test.labels.copy(),
        class_names=class_names,
    )


def _parse(contents: Mapping[str, tuple[bytes, str]], name: str, variant: CifarVariant) -> CifarRecords:
    data, source = contents[name]
    return parse_records(data, variant, source)


def _stack(images: list[np.ndarray]) -> np.ndarray:
    # One copy of the strided HWC views into a C-contiguous, writable array (plain
    # np.concatenate would keep the strided layout).
    out = np.empty((sum(i.shape[0] for i in images), *images[0].shape[1:]), dtype=np.uint8)
    return np.concatenate(images, out=out)
