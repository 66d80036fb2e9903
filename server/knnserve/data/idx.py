"""The IDX format of MNIST and Fashion-MNIST: one array a file, gzip-compressed or not."""

from __future__ import annotations

import hashlib
import math
import struct
from pathlib import Path

import numpy as np

from knnserve.data.arrays import Splits, as_labels, check_pair, check_same_image_shape
from knnserve.data.files import read_content
from knnserve.errors import DatasetError

# Type codes of the IDX header (third byte); multi-byte values are big-endian.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Role -> the standard file name (without .gz) of the MNIST family.
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

def idx_name_variants(standard: str) -> tuple[str, ...]:
    """File names accepted for one standard IDX name: plain, dotted (``.idx3-ubyte``), each ``.gz`` or not."""
    dotted = standard.replace("-idx", ".idx", 1)
    return (standard, f"{standard}.gz", dotted, f"{dotted}.gz")


def parse_idx(data: bytes, source: str | Path) -> np.ndarray:
    """Parse IDX bytes into a native-endian, writable array; errors name ``source``."""
    if len(data) < 4:
        raise DatasetError(f"{source}: expected an IDX header of 4 bytes, got {len(data)} bytes")
    zero, type_code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00":
        magic = struct.unpack(">I", data[:4])[0]
        raise DatasetError(
            f"{source}: bad magic number 0x{magic:08X}; expected an IDX file starting with two "
            f"zero bytes, a type code and the number of dimensions (e.g. 0x00000803)"
        )
    if type_code not in IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise DatasetError(f"{source}: unknown IDX type code 0x{type_code:02X}; expected one of {known}")
    if ndim == 0:
        raise DatasetError(f"{source}: expected an IDX array with at least 1 dimension, got 0")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(
            f"{source}: truncated IDX header; expected {header} bytes for {ndim} dimensions, "
            f"got {len(data)}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_DTYPES[type_code]
    count = math.prod(dims)
    expected = header + count * dtype.itemsize
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "trailing bytes"
        raise DatasetError(
            f"{source}: {state}; expected {expected} bytes for an array of shape {dims} "
            f"and dtype {dtype.name}, got {len(data)}"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    # astype copies: the result is writable and in native byte order.
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or not) into a numpy array.

    Raises DatasetError naming the file when it is missing, not IDX, or truncated.
    """
    path = Path(path)
    return parse_idx(read_content(path), path)


def find_idx_files(folder: Path) -> dict[str, Path]:
    """Return role -> path for the standard IDX files present in ``folder`` (possibly none)."""
    found: dict[str, Path] = {}
    for role, standard in IDX_FILES.items():
        for name in idx_name_variants(standard):
            candidate = folder / name
            if candidate.is_file():
                found[role] = candidate
                break
    return found


def read_idx_folder(folder: str | Path, n_classes: int | None = None) -> Splits:
    """Read the four standard IDX files of an MNIST-style folder.

    Parameters
    ----------
    folder
        Folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each may end in
        ``.gz``, and ``-idx`` may be ``.idx``).
    n_classes
        When given, labels must lie in ``[0, n_classes)``.
    """
    folder = Path(folder)
    found = find_idx_files(folder)
    missing = [IDX_FILES[role] for role in IDX_FILES if role not in found]
    if missing:
        raise DatasetError(
            f"{folder}: missing IDX file(s) {', '.join(missing)} (plain or .gz); expected all four "
            f"of {', '.join(IDX_FILES.values())}"
        )
    arrays: dict[str, np.ndarray] = {}
    digests: dict[str, str] = {}
    for role, path in found.items():
        data = read_content(path)
        digests[IDX_FILES[role]] = hashlib.sha256(data).hexdigest()
        arrays[role] = parse_idx(data, path)
    y_train = as_labels(arrays["train_labels"], found["train_labels"], n_classes)
    y_test = as_labels(arrays["test_labels"], found["test_labels"], n_classes)
    check_pair(arrays["train_images"], y_train, found["train_images"], found["train_labels"])
    check_pair(arrays["test_images"], y_test, found["test_images"], found["test_labels"])
    check_same_image_shape(arrays["train_images"], arrays["test_images"], found["test_images"])
    return Splits(
        x_train=arrays["train_images"],
        y_train=y_train,
        x_test=arrays["test_images"],
        y_test=y_test,
        content_sha256=digests,
    )
