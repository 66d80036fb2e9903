"""Writers of tiny files in exactly the published formats (IDX, CIFAR binary, tar.gz) for the data tests."""

from __future__ import annotations

import gzip
import hashlib
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IDX_TYPE_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}
IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` as IDX: 0x0000, type code, ndim, big-endian uint32 dims, big-endian data."""
    header = bytes([0, 0, IDX_TYPE_CODES[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_file(path: Path, content: bytes, gz: bool) -> Path:
    """Write ``content`` to ``path`` (gzip-compressed when ``gz``) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(content, mtime=0) if gz else content)
    return path


@dataclass(frozen=True)
class IdxData:
    """The arrays written into a tiny IDX folder, keyed like IDX_STEMS."""

    arrays: dict[str, np.ndarray]

    @property
    def contents(self) -> dict[str, bytes]:
        """Stem -> decompressed IDX bytes."""
        return {IDX_STEMS[role]: idx_bytes(a) for role, a in self.arrays.items()}


def make_idx_arrays(seed: int = 0, n_train: int = 30, n_test: int = 10, n_classes: int = 10) -> IdxData:
    """Random uint8 28x28 images and labels covering ``n_classes`` classes."""
    rng = np.random.default_rng(seed)
    return IdxData(
        {
            "train_images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
            "train_labels": (np.arange(n_train) % n_classes).astype(np.uint8),
            "test_images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
            "test_labels": (np.arange(n_test) % n_classes).astype(np.uint8),
        }
    )


def write_idx_folder(folder: Path, data: IdxData, gz: bool = True, dotted: bool = False) -> dict[str, Path]:
    """Write the four IDX files with their standard names; return role -> path."""
    paths = {}
    for role, array in data.arrays.items():
        name = IDX_STEMS[role]
        if dotted:
            name = name.replace("-idx", ".idx")
        paths[role] = write_file(folder / (name + (".gz" if gz else "")), idx_bytes(array), gz)
    return paths


def cifar_bytes(images: np.ndarray, labels: np.ndarray, coarse: np.ndarray | None = None) -> bytes:
    """CIFAR binary records: [coarse byte] label byte, then the R, G and B planes (1024 bytes each)."""
    out = bytearray()
    for i in range(images.shape[0]):
        if coarse is not None:
            out.append(int(coarse[i]))
        out.append(int(labels[i]))
        out += images[i].transpose(2, 0, 1).tobytes()
    return bytes(out)


@dataclass(frozen=True)
class CifarData:
    """What was written into a tiny CIFAR folder."""

    folder: Path
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    coarse_train: np.ndarray | None = None


def write_cifar10_folder(root: Path, seed: int = 0, per_batch: int = 3, n_test: int = 4) -> CifarData:
    """A cifar-10-batches-bin/ with five data batches, a test batch and batches.meta.txt."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for batch in range(1, 6):
        x = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, size=per_batch).astype(np.uint8)
        (folder / f"data_batch_{batch}.bin").write_bytes(cifar_bytes(x, y))
        xs.append(x)
        ys.append(y)
    x_test = rng.integers(0, 256, size=(n_test, 32, 32, 3), dtype=np.uint8)
    y_test = rng.integers(0, 10, size=n_test).astype(np.uint8)
    (folder / "test_batch.bin").write_bytes(cifar_bytes(x_test, y_test))
    names = tuple(f"class{i}" for i in range(10))
    (folder / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    return CifarData(folder, np.concatenate(xs), np.concatenate(ys), x_test, y_test, names)


def write_cifar100_folder(root: Path, seed: int = 0, n_train: int = 7, n_test: int = 3) -> CifarData:
    """A cifar-100-binary/ with train.bin, test.bin and both label-name files."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-binary"
    folder.mkdir(parents=True)
    x = rng.integers(0, 256, size=(n_train, 32, 32, 3), dtype=np.uint8)
    fine = rng.integers(0, 100, size=n_train).astype(np.uint8)
    coarse = rng.integers(0, 20, size=n_train).astype(np.uint8)
    x_test = rng.integers(0, 256, size=(n_test, 32, 32, 3), dtype=np.uint8)
    fine_test = rng.integers(0, 100, size=n_test).astype(np.uint8)
    coarse_test = rng.integers(0, 20, size=n_test).astype(np.uint8)
    (folder / "train.bin").write_bytes(cifar_bytes(x, fine, coarse))
    (folder / "test.bin").write_bytes(cifar_bytes(x_test, fine_test, coarse_test))
    names = tuple(f"fine{i}" for i in range(100))
    (folder / "fine_label_names.txt").write_text("\n".join(names) + "\n")
    (folder / "coarse_label_names.txt").write_text("\n".join(f"coarse{i}" for i in range(20)) + "\n")
    return CifarData(folder, x, fine, x_test, fine_test, names, coarse_train=coarse)


def write_targz(folder: Path, archive: Path) -> Path:
    """Pack ``folder`` into ``archive`` (.tar.gz) under its own name, as the CIFAR archives are."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def md5_of(path: Path) -> str:
    """md5 hex digest of a file's bytes."""
    return hashlib.md5(path.read_bytes()).hexdigest()


def sha256_of(content: bytes) -> str:
    """sha256 hex digest of bytes."""
    return hashlib.sha256(content).hexdigest()


def tiny_idx_spec(server: Path, data: IdxData, name: str = "tiny", system_dirs: tuple[Path, ...] = ()):
    """Serve ``data`` as .gz files under ``server`` and return a registry entry for them.

    Its checksums are derived from the files written here (md5 of each .gz, sha256 of
    its content) and its URLs are ``file://`` ones, so downloads run offline.
    """
    from dataclasses import replace

    from knnserve.data.registry import FASHION_MNIST, RemoteFile

    paths = write_idx_folder(server, data, gz=True)
    contents = data.contents
    files = tuple(
        RemoteFile(
            name=path.name,
            urls=(path.as_uri(),),
            md5=md5_of(path),
            sha256=sha256_of(contents[IDX_STEMS[role]]),
        )
        for role, path in paths.items()
    )
    return replace(FASHION_MNIST, name=name, files=files, system_dirs=system_dirs, debian_package=None)
