"""Reading the array a user hands ``knnserve predict --input``: ``.npy`` or an IDX images file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from knnserve.data.files import load_numpy, read_content
from knnserve.data.idx import parse_idx
from knnserve.errors import DatasetError

_EXPECTED = "a .npy array (read with allow_pickle=False) or an IDX images file (.gz or not)"


def read_input_array(path: str | Path) -> np.ndarray:
    """Read samples to classify from ``.npy`` or IDX; anything else raises DatasetError naming the file."""
    path = Path(path)
    if path.suffix == ".npy":
        return _read_npy(path)
    content = read_content(path)
    if content[:2] != b"\x00\x00":
        raise DatasetError(f"{path}: unsupported input; expected {_EXPECTED}")
    return parse_idx(content, path)


def _read_npy(path: Path) -> np.ndarray:
    array = load_numpy(path, _EXPECTED)
    if not isinstance(array, np.ndarray):
        array.close()
        raise DatasetError(f"{path}: expected a single .npy array, got an .npz archive")
    if array.dtype.kind not in "iuf":
        raise DatasetError(f"{path}: expected a numeric array, got dtype {array.dtype}")
    return array
